//! The broker process: opens metadata and partitions, serves the Kafka listener and the HTTP endpoints,
//! runs background maintenance (retention, compaction, flushing), and shuts down gracefully.

mod offsets_log;
mod placement;
mod topics;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use offsets_log::{OFFSETS_TOPIC, group_coordinator};
pub use topics::{TopicError, TopicSpec};

use crate::cluster::{BrokerInfo, MetadataRecord, MetadataStore, RaftOptions};
use crate::config::{BrokerArgs, BrokerConfig};
use crate::group::{GroupConfig, GroupCoordinator};
use crate::metrics::Metrics;
use crate::partition::ReplicaManager;

/// Everything a request handler may touch.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    /// Shared with the other brokers of an in-process test cluster; otherwise this broker's own.
    pub metadata: Arc<MetadataStore>,
    /// Shared with the group coordinator's log, which finds the offsets partition here.
    pub replicas: Arc<ReplicaManager>,
    pub groups: GroupCoordinator,
    pub metrics: Metrics,
    /// Block of producer ids handed out by InitProducerId: `(next, end)`.
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Serialises topic creation, deletion and config changes (check, then commit).
    admin: tokio::sync::Mutex<()>,
    ready: AtomicBool,
    /// Leader epoch of the offsets partition the group coordinator was loaded at; -1 while
    /// another broker coordinates.
    coordinator_epoch: AtomicI32,
}

impl Broker {
    /// Opens the data directory: metadata, every hosted partition, the coordinator's state.
    pub async fn open(config: BrokerConfig) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let metadata_dir = config.data_dir.join("__cluster_metadata");
        let metadata = match &config.cluster {
            None => Arc::new(MetadataStore::open(&metadata_dir)?),
            Some(cluster) => Arc::new(
                MetadataStore::open_cluster_ready(
                    RaftOptions::from_config(config.node_id, cluster, metadata_dir)?,
                    cluster.ready_timeout,
                )
                .await?,
            ),
        };
        Self::open_with_metadata(config, metadata).await
    }

    /// [`Broker::open`] with a metadata store the caller opened (shared by in-process test clusters).
    pub async fn open_with_metadata(
        config: BrokerConfig,
        metadata: Arc<MetadataStore>,
    ) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let me = BrokerInfo {
            id: config.node_id,
            host: config.advertised_host.clone(),
            port: config.advertised_port,
            rack: config.rack.clone(),
        };
        if metadata.read().brokers.get(&me.id) != Some(&me) {
            metadata
                .commit(vec![MetadataRecord::RegisterBroker(me)])
                .await?;
        }
        let replicas = Arc::new(ReplicaManager::new(
            config.data_dir.clone(),
            config.topic_defaults.clone(),
        ));
        crate::replica::reconcile(&metadata, &replicas, config.node_id)
            .context("opening the partitions this broker hosts")?;
        // Kafka's offsets.topic.replication.factor (3), within the cluster's size: a cluster has at
        // least as many brokers as metadata voters.
        let (want_offsets_replicas, wait) = match &config.cluster {
            Some(c) => (c.voters.len().clamp(1, 3), c.ready_timeout),
            None => (1, std::time::Duration::ZERO),
        };
        let offsets = offsets_log::open(
            &metadata,
            &replicas,
            config.node_id,
            want_offsets_replicas,
            wait,
        )
        .await?;
        crate::replica::reconcile(&metadata, &replicas, config.node_id)
            .context("opening the partitions this broker hosts")?;
        let group_config = GroupConfig {
            group_initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            ..GroupConfig::default()
        };
        let lookup = Arc::new(topics::PartitionLookupImpl::default());
        // Only the leader of the offsets partition coordinates: `sync_coordinator` loads the
        // groups when this broker leads it (before the listener opens) and `follow_leadership`
        // keeps it so; until then nothing is loaded (epoch -1).
        let groups = GroupCoordinator::new_inactive(offsets, lookup.clone(), group_config)?;
        let coordinator_epoch = -1;
        let broker = Arc::new(Broker {
            config,
            metadata,
            replicas,
            groups,
            metrics: Metrics::default(),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            admin: tokio::sync::Mutex::new(()),
            ready: AtomicBool::new(false),
            coordinator_epoch: AtomicI32::new(coordinator_epoch),
        });
        lookup.set(&broker);
        broker
            .metrics
            .register_with(|r| broker.metadata.register_metrics(r));
        Ok(broker)
    }

    /// Hands out a producer id (InitProducerId).
    pub async fn allocate_producer_id(&self) -> anyhow::Result<i64> {
        Ok(self
            .metadata
            .allocate_producer_id(&self.producer_ids)
            .await?)
    }

    /// True once the listener is bound, every partition is open, the controller has unfenced this
    /// broker, and its metadata is caught up with the quorum's.
    pub fn is_ready(&self) -> bool {
        // A fenced broker leads nothing and is out of every ISR: not ready until unfenced.
        self.ready.load(Ordering::Relaxed)
            && self.metadata.caught_up()
            && !self.metadata.read().fenced.contains(&self.config.node_id)
    }

    /// Waits until the controller has unfenced this broker, at most `timeout`; false on timeout.
    async fn wait_unfenced(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.metadata.subscribe();
        loop {
            if !self.metadata.read().fenced.contains(&self.config.node_id) {
                return true;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                // Timed out, or the store is gone.
                Err(_) | Ok(Err(_)) => return false,
            }
        }
    }

    /// Binds the listeners and serves until `shutdown`; then stops accepting, lets requests in flight
    /// finish within the grace period, and flushes every log.
    pub async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let listener = TcpListener::bind(self.config.listen)
            .await
            .with_context(|| format!("binding the Kafka listener on {}", self.config.listen))?;
        let http = TcpListener::bind(self.config.http)
            .await
            .with_context(|| format!("binding the HTTP listener on {}", self.config.http))?;
        tracing::info!(
            kafka = %listener.local_addr()?, http = %http.local_addr()?, node_id = self.config.node_id,
            cluster_id = self.metadata.cluster_id(), data_dir = %self.config.data_dir.display(),
            "broker started"
        );
        self.serve_on(listener, http, shutdown).await
    }

    /// [`Broker::serve`] on listeners the caller bound (tests bind port 0).
    pub async fn serve_on(
        self: Arc<Self>,
        listener: TcpListener,
        http: TcpListener,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        let conn_shutdown = CancellationToken::new();
        let background = CancellationToken::new();
        let heartbeats_stop = CancellationToken::new();
        // Dropping this future (an abrupt stop) ends everything it started, with no controlled
        // shutdown: heartbeats stop and the controller fences this broker after its session.
        let _stop_on_drop = (
            conn_shutdown.clone().drop_guard(),
            background.clone().drop_guard(),
            heartbeats_stop.clone().drop_guard(),
        );
        {
            let b = self.clone();
            let t = background.clone();
            tracker.spawn(async move { b.groups.run(t).await });
        }
        tracker.spawn(crate::server::topics::maintenance(
            self.clone(),
            background.clone(),
        ));
        tracker.spawn(crate::http::serve(http, self.clone(), background.clone()));
        tracker.spawn(crate::replica::reactor::run(
            self.clone(),
            background.clone(),
        ));
        tracker.spawn(crate::replica::fetcher::run(
            self.clone(),
            background.clone(),
        ));
        tracker.spawn(crate::replica::isr::run(self.clone(), background.clone()));
        // Liveness before the listener opens: start fenced (a restarted broker may have lost
        // unflushed records, so it leads nothing until the controller has seen it heartbeat),
        // heartbeat, and (on the controller, always in single-node mode) unfence this broker and
        // give it its leadership back before the first request arrives.
        // Bounded: without a metadata quorum yet, the broker serves anyway and the controller
        // catches up with it through the heartbeats.
        let mut controller = crate::controller::Controller::new(self.clone());
        let startup = async {
            crate::controller::start_fenced(&self).await;
            controller.tick().await;
            if let Err(err) = self.metadata.heartbeat(self.config.node_id).await {
                tracing::warn!(%err, "first heartbeat to the controller failed");
            }
            controller.tick().await;
        };
        if tokio::time::timeout(self.config.broker_session_timeout, startup)
            .await
            .is_err()
        {
            tracing::warn!(
                timeout = ?self.config.broker_session_timeout,
                "cluster metadata did not answer at start-up; serving while the controller catches up"
            );
        }
        tracker.spawn(controller.run(background.clone()));
        let heartbeats = tokio::spawn(crate::controller::send_heartbeats(
            self.clone(),
            heartbeats_stop.clone(),
        ));
        // As Kafka does, clients are let in once the controller has unfenced this broker and its
        // partitions have taken their roles; a cluster that does not answer in time gets a
        // broker that serves anyway (and answers with retriable errors until it is unfenced).
        let unfence_wait = self
            .config
            .cluster
            .as_ref()
            .map_or(self.config.broker_session_timeout, |c| c.ready_timeout);
        if !self.wait_unfenced(unfence_wait).await {
            tracing::warn!(timeout = ?unfence_wait, "not unfenced by the controller in time; serving anyway");
        }
        if let Err(err) =
            crate::replica::reconcile(&self.metadata, &self.replicas, self.config.node_id)
        {
            tracing::warn!(%err, "reconciling partitions before serving failed");
        }
        // Coordinate groups from the first request if this broker leads the offsets partition.
        if let Err(err) = offsets_log::sync_coordinator(&self) {
            tracing::warn!(%err, "loading the group coordinator failed; retrying");
        }
        tracker.spawn(offsets_log::follow_leadership(
            self.clone(),
            background.clone(),
        ));
        let accept = tokio::spawn(crate::net::serve(
            listener,
            self.clone(),
            conn_shutdown.clone(),
            tracker.clone(),
        ));
        self.ready.store(true, Ordering::Relaxed);

        shutdown.cancelled().await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        self.ready.store(false, Ordering::Relaxed);
        // Controlled shutdown: heartbeats stop first (so the controller does not unfence this
        // broker again), then leadership moves to the other in-sync replicas while clients can
        // still reach this listener and learn where it went.
        heartbeats_stop.cancel();
        let _ = heartbeats.await;
        crate::controller::controlled_shutdown(&self, self.config.shutdown_grace).await;
        conn_shutdown.cancel();
        let _ = accept.await;
        background.cancel();
        tracker.close();
        if tokio::time::timeout(self.config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.config.shutdown_grace, "requests still running after the grace period");
        }
        self.replicas.flush_all();
        self.metadata.shutdown().await;
        tracing::info!("broker stopped");
        Ok(())
    }
}

/// `odradek broker`: runs until `shutdown`.
pub async fn run(args: BrokerArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = args.into_config()?;
    // In a cluster, opening waits for the metadata quorum: a signal meanwhile ends the wait.
    let broker = tokio::select! {
        b = Broker::open(config) => b?,
        () = shutdown.cancelled() => {
            tracing::info!("shutdown requested before the broker started");
            return Ok(());
        }
    };
    broker.serve(shutdown).await
}
