//! `odradek operator`: flags, then the process: HTTP endpoints, leader election on a Lease, and the
//! three controllers per watched namespace, with graceful shutdown.
//!
//! Leadership: a replica runs controllers only while it holds the Lease. When it loses the Lease it
//! stops its controllers and exits with an error, so that Kubernetes restarts it as a fresh standby:
//! simpler and safer than resuming with caches that may be stale.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::Controller;
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use odradek_crds::{Broker, Processor, Topic};
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminConfig, KafkaConnector};
use crate::context::ControllerConfig;
use crate::controllers::{MANAGED_BY, broker, processor, topic};
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::{AdminConnector, Context};

/// Flags of `odradek operator`.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "ODRADEK_HTTP", default_value = "0.0.0.0:8080")]
    pub http: SocketAddr,
    /// Namespaces to watch, comma-separated; all namespaces when empty.
    #[arg(long, env = "ODRADEK_WATCH_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Run controllers only while holding the leader Lease (needed when more than one replica runs).
    #[arg(long, env = "ODRADEK_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,
    /// Name of the leader Lease.
    #[arg(long, env = "ODRADEK_LEASE_NAME", default_value = "odradek-operator")]
    pub lease_name: String,
    /// Namespace of the leader Lease; defaults to $POD_NAMESPACE, else `default`.
    #[arg(long, env = "ODRADEK_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "ODRADEK_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds before expiry at which the holder renews the Lease.
    #[arg(long, env = "ODRADEK_LEASE_GRACE_SECONDS", default_value_t = 5)]
    pub lease_grace_seconds: u64,
    /// Image of broker pods when a Broker does not name one.
    #[arg(
        long,
        env = "ODRADEK_BROKER_IMAGE",
        default_value = "ghcr.io/odradek-dev/odradek:latest"
    )]
    pub broker_image: String,
    /// Image of built-in processor jobs when a Processor does not name one.
    #[arg(
        long,
        env = "ODRADEK_PROCESSOR_IMAGE",
        default_value = "ghcr.io/odradek-dev/odradek:latest"
    )]
    pub processor_image: String,
    /// DNS suffix of the Kubernetes cluster.
    #[arg(long, env = "ODRADEK_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Seconds between drift-correcting resyncs of every object.
    #[arg(long, env = "ODRADEK_RESYNC_SECONDS", default_value_t = 300)]
    pub resync_seconds: u64,
    /// Seconds between reconciles while something is in motion (pods starting, partitions moving,
    /// autoscaling).
    #[arg(long, env = "ODRADEK_POLL_SECONDS", default_value_t = 15)]
    pub poll_seconds: u64,
    /// Deadline in seconds of one Kafka admin request.
    #[arg(long, env = "ODRADEK_ADMIN_TIMEOUT_SECONDS", default_value_t = 10)]
    pub admin_timeout_seconds: u64,
    /// Seconds to let reconciles in flight finish on shutdown.
    #[arg(long, env = "ODRADEK_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
}

/// Invalid flags.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A duration flag is zero.
    #[error("--{flag} must be at least 1 second, got {value}")]
    Zero {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: u64,
    },
    /// The Lease grace is not shorter than its duration.
    #[error(
        "--lease-grace-seconds ({grace}) must be shorter than --lease-duration-seconds ({duration})"
    )]
    LeaseGrace {
        /// Grace.
        grace: u64,
        /// Duration.
        duration: u64,
    },
    /// An empty image name.
    #[error("--{flag} must not be empty")]
    EmptyImage {
        /// The flag.
        flag: &'static str,
    },
}

impl OperatorArgs {
    /// Checks the flags, naming the bad value.
    ///
    /// # Errors
    /// The first invalid flag.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (flag, value) in [
            ("lease-duration-seconds", self.lease_duration_seconds),
            ("lease-grace-seconds", self.lease_grace_seconds),
            ("resync-seconds", self.resync_seconds),
            ("poll-seconds", self.poll_seconds),
            ("admin-timeout-seconds", self.admin_timeout_seconds),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { flag, value });
            }
        }
        if self.lease_grace_seconds >= self.lease_duration_seconds {
            return Err(ConfigError::LeaseGrace {
                grace: self.lease_grace_seconds,
                duration: self.lease_duration_seconds,
            });
        }
        for (flag, image) in [
            ("broker-image", &self.broker_image),
            ("processor-image", &self.processor_image),
        ] {
            if image.trim().is_empty() {
                return Err(ConfigError::EmptyImage { flag });
            }
        }
        Ok(())
    }

    /// The namespaces to watch, blanks dropped (`ODRADEK_WATCH_NAMESPACES=""` means all).
    #[must_use]
    pub fn watched_namespaces(&self) -> Vec<String> {
        self.namespaces
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The controllers' settings.
    #[must_use]
    pub fn controller_config(&self) -> ControllerConfig {
        ControllerConfig {
            broker_image: self.broker_image.clone(),
            processor_image: self.processor_image.clone(),
            cluster_domain: self.cluster_domain.clone(),
            resync: Duration::from_secs(self.resync_seconds),
            poll: Duration::from_secs(self.poll_seconds),
            ..ControllerConfig::default()
        }
    }
}

/// Runs the operator until `shutdown` is cancelled (or leadership is lost).
///
/// # Errors
/// Bad flags, no Kubernetes client, a failed HTTP server, or a lost Lease.
pub async fn run(args: OperatorArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    args.validate()?;
    let client = Client::try_default()
        .await
        .context("cannot build a Kubernetes client (in-cluster config or kubeconfig)")?;

    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let listener = http::bind(args.http)
        .await
        .with_context(|| format!("cannot bind --http {}", args.http))?;
    let mut tasks = JoinSet::new();
    let http_shutdown = shutdown.child_token();
    tasks.spawn(http::serve(
        listener,
        HttpState {
            registry: Arc::new(registry),
            ready: ready.clone(),
        },
        http_shutdown.clone(),
    ));
    tracing::info!(http = %args.http, "serving /metrics, /healthz, /readyz");

    let result = lead_and_run(&args, client, metrics, ready, shutdown).await;
    http_shutdown.cancel();
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            tracing::warn!(error = %e, "http server stopped with an error");
        }
    }
    result
}

async fn lead_and_run(
    args: &OperatorArgs,
    client: Client,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let identity = identity();
    if !args.leader_election {
        ready.store(true, Ordering::Relaxed);
        metrics.set_leader(true);
        return run_controllers(args, client, metrics, identity, shutdown).await;
    }
    let namespace = args
        .lease_namespace
        .clone()
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| "default".to_owned());
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&namespace)
        .with_identity(&identity)
        .with_duration(args.lease_duration_seconds)
        .with_grace(args.lease_grace_seconds)
        // One field manager per replica: the Lease's server-side apply conflicts are what keep two
        // replicas from both holding it.
        .with_field_manager(lease_field_manager(&identity))
        .build()
        .await
        .context("cannot set up leader election")?;
    let (mut leading, lease_task) = manager.watch().await;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(%identity, lease = %args.lease_name, %namespace, "waiting for the leader lease");

    let term = follow_leadership(
        &mut leading,
        &shutdown,
        || {
            tracing::info!(%identity, "acquired the leader lease");
            metrics.set_leader(true);
        },
        |stop| run_controllers(args, client, metrics.clone(), identity.clone(), stop),
    )
    .await;
    metrics.set_leader(false);
    // Dropping the receiver makes the lease task release the Lease for the next leader.
    drop(leading);
    match lease_task.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot release the leader lease"),
        Err(e) => tracing::warn!(error = %e, "leader election task failed"),
    }
    match term? {
        Term::Lost => anyhow::bail!("lost the leader lease"),
        Term::ShutdownWhileStandby | Term::Finished => Ok(()),
    }
}

/// How a replica's time with the Lease ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Term {
    /// Shut down before ever leading.
    ShutdownWhileStandby,
    /// Led until the controllers finished (shutdown).
    Finished,
    /// Lost the Lease while leading; the controllers were stopped.
    Lost,
}

/// Stands by until `leading` says this replica leads, then runs `controllers` with a stop token until
/// they finish (shutdown) or leadership is lost, in which case the token is cancelled and the
/// controllers are awaited: a replica never reconciles without the Lease.
async fn follow_leadership<F, Fut>(
    leading: &mut tokio::sync::watch::Receiver<bool>,
    shutdown: &CancellationToken,
    on_lead: impl FnOnce(),
    controllers: F,
) -> anyhow::Result<Term>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    while !*leading.borrow_and_update() {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(Term::ShutdownWhileStandby),
            changed = leading.changed() => changed.context("leader election stopped")?,
        }
    }
    on_lead();
    let stop = shutdown.child_token();
    let running = controllers(stop.clone());
    tokio::pin!(running);
    tokio::select! {
        result = &mut running => result.map(|()| Term::Finished),
        () = wait_for_loss(leading) => {
            tracing::error!("lost the leader lease; stopping controllers");
            stop.cancel();
            running.await?;
            Ok(Term::Lost)
        }
    }
}

async fn wait_for_loss(leading: &mut tokio::sync::watch::Receiver<bool>) {
    loop {
        if leading.changed().await.is_err() || !*leading.borrow_and_update() {
            return;
        }
    }
}

/// The field manager of this replica's Lease writes.
fn lease_field_manager(identity: &str) -> String {
    format!("{}-lease-{identity}", crate::controllers::FIELD_MANAGER)
}

/// This replica's identity in the Lease: the pod name and a random suffix.
fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "odradek-operator".to_owned());
    format!("{host}-{:08x}", rand::random::<u32>())
}

/// Runs every controller for every watched namespace until `stop` is cancelled, then lets reconciles
/// in flight finish (bounded by the grace period).
async fn run_controllers(
    args: &OperatorArgs,
    client: Client,
    metrics: Arc<Metrics>,
    identity: String,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let connector: Arc<dyn AdminConnector> = Arc::new(KafkaConnector::new(AdminConfig {
        request_timeout: Duration::from_secs(args.admin_timeout_seconds),
        ..AdminConfig::default()
    }));
    let namespaces: Vec<Option<String>> = match args.watched_namespaces() {
        list if list.is_empty() => vec![None],
        list => list.into_iter().map(Some).collect(),
    };
    let mut set = JoinSet::new();
    for ns in namespaces {
        let client = client.clone();
        let ctx_parts = (
            connector.clone(),
            args.controller_config(),
            metrics.clone(),
            identity.clone(),
        );
        set.spawn(controllers_for(ns, client, ctx_parts, stop.clone()));
    }
    tracing::info!("controllers started");
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let waiting = deadline.is_none() && !set.is_empty();
        let next = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, set.join_next()).await,
                None => Ok(set.join_next().await),
            }
        };
        tokio::select! {
            joined = next => match joined {
                Ok(None) => break,
                Ok(Some(Err(e))) => tracing::error!(error = %e, "controller task failed"),
                Ok(Some(Ok(()))) => {}
                Err(_) => {
                    tracing::warn!(?grace, "reconciles still running after the grace period; aborting");
                    set.abort_all();
                    deadline = None;
                }
            },
            () = stop.cancelled(), if waiting => {
                deadline = Some(tokio::time::Instant::now() + grace);
            }
        }
    }
    tracing::info!("controllers stopped");
    Ok(())
}

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn log_result<K, E>(
    controller: &'static str,
    result: Result<
        (
            kube::runtime::reflector::ObjectRef<K>,
            kube::runtime::controller::Action,
        ),
        E,
    >,
) where
    K: kube::Resource,
    K::DynamicType: Clone + Eq + std::hash::Hash,
    E: std::fmt::Display,
{
    match result {
        Ok((obj, _)) => tracing::debug!(controller, object = %obj, "reconciled"),
        Err(e) => tracing::debug!(controller, error = %e, "reconcile failed"),
    }
}

type CtxParts = (
    Arc<dyn AdminConnector>,
    ControllerConfig,
    Arc<Metrics>,
    String,
);

async fn controllers_for(
    ns: Option<String>,
    client: Client,
    (connector, config, metrics, identity): CtxParts,
    stop: CancellationToken,
) {
    let ns = ns.as_deref();
    let watch = watcher::Config::default().any_semantic();
    let children = watcher::Config::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));

    let topics = Controller::new(api::<Topic>(&client, ns), watch.clone());
    let ctx = Arc::new(Context::new(
        client.clone(),
        connector,
        config,
        metrics,
        topics.store(),
        Some(identity),
    ));
    let topics = topics
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(topic::reconcile, topic::error_policy, ctx.clone())
        .for_each(|r| log_result(topic::CONTROLLER, r));
    let brokers = Controller::new(api::<Broker>(&client, ns), watch.clone())
        .owns(api::<StatefulSet>(&client, ns), children.clone())
        .owns(api::<Service>(&client, ns), children.clone())
        .owns(api::<ConfigMap>(&client, ns), children.clone())
        .owns(api::<PodDisruptionBudget>(&client, ns), children.clone())
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(broker::reconcile, broker::error_policy, ctx.clone())
        .for_each(|r| log_result(broker::CONTROLLER, r));
    let processors = Controller::new(api::<Processor>(&client, ns), watch)
        .owns(api::<StatefulSet>(&client, ns), children)
        .graceful_shutdown_on(stop.cancelled_owned())
        .run(processor::reconcile, processor::error_policy, ctx)
        .for_each(|r| log_result(processor::CONTROLLER, r));
    futures::join!(topics, brokers, processors);
}

#[cfg(test)]
mod tests;
