//! Prometheus metrics of the operator: reconciles, their durations and errors by kind, per controller.
//!
//! Label values are fixed sets (controller names and [`crate::Error::metric_label`]), so the series
//! count stays bounded whatever objects exist.

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::Error;

/// Labels of per-controller series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `broker`, `topic` or `processor`.
    pub controller: &'static str,
}

/// Labels of error series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `broker`, `topic` or `processor`.
    pub controller: &'static str,
    /// [`Error::metric_label`].
    pub kind: &'static str,
    /// `true` for errors retried soon.
    pub transient: &'static str,
}

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
    leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            errors: Family::default(),
            durations: Family::new_with_constructor(|| {
                // 1 ms .. ~16 s: a reconcile talks to the API server and to a Kafka cluster.
                Histogram::new(exponential_buckets(0.001, 2.0, 15))
            }),
            leader: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under the `odradek_operator` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let sub = registry.sub_registry_with_prefix("odradek_operator");
        sub.register(
            "reconciles",
            "Reconciliations started",
            self.reconciles.clone(),
        );
        sub.register(
            "reconcile_errors",
            "Reconciliations that failed, by error kind",
            self.errors.clone(),
        );
        sub.register(
            "reconcile_duration_seconds",
            "Duration of reconciliations",
            self.durations.clone(),
        );
        sub.register(
            "leader",
            "1 while this replica holds the leader lease",
            self.leader.clone(),
        );
    }

    /// Counts a reconcile of `controller` and times it until the returned guard drops.
    #[must_use]
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer {
        self.reconciles
            .get_or_create(&ControllerLabels { controller })
            .inc();
        ReconcileTimer {
            histogram: self
                .durations
                .get_or_create(&ControllerLabels { controller })
                .clone(),
            start: Instant::now(),
        }
    }

    /// Counts a failed reconcile.
    pub fn error(&self, controller: &'static str, error: &Error) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller,
                kind: error.metric_label(),
                transient: if error.is_transient() {
                    "true"
                } else {
                    "false"
                },
            })
            .inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Reconciles counted so far for `controller` (for tests and logs).
    #[must_use]
    pub fn reconcile_count(&self, controller: &'static str) -> u64 {
        self.reconciles
            .get_or_create(&ControllerLabels { controller })
            .get()
    }
}

/// Observes a reconcile's duration when dropped.
#[derive(Debug)]
pub struct ReconcileTimer {
    histogram: Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_and_errors_are_exported_with_fixed_labels() {
        let metrics = Metrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        drop(metrics.reconcile("topic"));
        metrics.error("topic", &Error::Plan("x".into()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"odradek_operator_reconciles_total{controller="topic"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"odradek_operator_reconcile_errors_total{controller="topic",kind="plan",transient="false"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                "odradek_operator_reconcile_duration_seconds_count{controller=\"topic\"} 1"
            ),
            "{text}"
        );
        assert_eq!(metrics.reconcile_count("topic"), 1);
    }
}
