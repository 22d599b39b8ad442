//! What every reconcile sees: the Kubernetes client, the event recorder, metrics, the Kafka admin
//! connector, settings, and the little memory the controllers keep between reconciles.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::Store;
use odradek_crds::Topic;

use crate::admin::AdminConnector;
use crate::controllers::processor::ProcessorMemory;
use crate::metrics::Metrics;

/// Settings of the controllers.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Image of broker pods when a Broker does not name one.
    pub broker_image: String,
    /// Image of built-in processor jobs when a Processor does not name one.
    pub processor_image: String,
    /// DNS suffix of the Kubernetes cluster (`cluster.local`).
    pub cluster_domain: String,
    /// Period of the drift-correcting resync of every object.
    pub resync: Duration,
    /// Requeue delay while waiting for something to progress (pods, reassignments).
    pub poll: Duration,
    /// First retry delay after a transient error; doubles per consecutive failure.
    pub backoff_base: Duration,
    /// Longest retry delay after transient errors.
    pub backoff_max: Duration,
    /// Retry delay after a permanent error (it needs a change, but changes also trigger reconciles).
    pub permanent_retry: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            broker_image: "ghcr.io/odradek-dev/odradek:latest".to_owned(),
            processor_image: "ghcr.io/odradek-dev/odradek:latest".to_owned(),
            cluster_domain: "cluster.local".to_owned(),
            resync: Duration::from_secs(300),
            poll: Duration::from_secs(15),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            permanent_retry: Duration::from_secs(600),
        }
    }
}

/// A clock, replaceable in tests.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Shared state of the controllers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Kafka admin clients by cluster.
    pub admin: Arc<dyn AdminConnector>,
    /// Settings.
    pub config: ControllerConfig,
    /// Every Topic (the Topic controller's cache), to find two Topics naming one Kafka topic.
    pub topics: Store<Topic>,
    /// The time.
    pub clock: Clock,
    /// Consecutive failures per object key, for exponential backoff. std mutex: never held across
    /// an await.
    pub failures: Mutex<HashMap<String, u32>>,
    /// Autoscaler state and the last offset sample per Processor key. std mutex: never held across
    /// an await.
    pub processors: Mutex<HashMap<String, ProcessorMemory>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The name events are reported under.
pub const REPORTER: &str = "odradek-operator";

impl Context {
    /// A context with the system clock.
    #[must_use]
    pub fn new(
        client: Client,
        admin: Arc<dyn AdminConnector>,
        config: ControllerConfig,
        metrics: Arc<Metrics>,
        topics: Store<Topic>,
        instance: Option<String>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: REPORTER.to_owned(),
                instance,
            },
        );
        Self {
            client,
            recorder,
            metrics,
            admin,
            config,
            topics,
            clock: Arc::new(Timestamp::now),
            failures: Mutex::new(HashMap::new()),
            processors: Mutex::new(HashMap::new()),
        }
    }

    /// The current time.
    #[must_use]
    pub fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// Records a failure of `key` and returns how many in a row.
    pub fn failed(&self, key: &str) -> u32 {
        let mut f = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = f.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}
