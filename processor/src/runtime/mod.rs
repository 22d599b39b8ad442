//! The Kafka edge: wiring of clients, the poll thread and the partition workers.
//!
//! Threads: the poll thread ([`consumer`]) owns the group consumer and runs the rebalance callbacks;
//! each assigned partition has a worker task ([`worker`]) on the tokio runtime; restores run on the
//! blocking pool. Workers talk back to the poll thread through [`Control`] messages (ready to
//! consume, offsets to commit); the poll thread talks to workers through bounded channels, pausing a
//! partition whose worker is behind instead of blocking the others.

mod admin;
mod changelog_source;
mod consumer;
mod worker;

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ProcessorArgs};
use crate::error::RuntimeError;
use crate::metrics::{Metrics, router};
use crate::task::Job;

/// Messages from workers to the poll thread. `epoch` tells apart the workers of successive
/// assignments of the same partition, so a late message of a revoked worker is ignored.
#[derive(Debug)]
pub(crate) enum Control {
    /// The worker has restored its stores: resume fetching its partition.
    Ready {
        partition: i32,
        epoch: u64,
        absorbed: i64,
    },
    /// The worker's state up to `offset` is checkpointed: commit `offset` for its partition.
    Commit {
        partition: i32,
        epoch: u64,
        offset: i64,
    },
}

/// What the poll thread and every worker share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) job: Arc<dyn Job>,
    pub(crate) producer: FutureProducer,
    pub(crate) metrics: Arc<Metrics>,
    control: std::sync::mpsc::Sender<Control>,
    /// Cancelled on the first fatal error of any worker.
    pub(crate) fatal: CancellationToken,
    /// That error (std mutex: never held across an await).
    error: Mutex<Option<RuntimeError>>,
}

impl Shared {
    pub(crate) fn send_control(&self, msg: Control) {
        // The poll thread outlives the workers while it runs; after it stops nobody needs this.
        let _ = self.control.send(msg);
    }

    /// Records the first fatal error and stops the process.
    pub(crate) fn fail(&self, error: RuntimeError) {
        tracing::error!(error = %error, "processor failed");
        if let Ok(mut slot) = self.error.lock()
            && slot.is_none()
        {
            *slot = Some(error);
        }
        self.fatal.cancel();
    }

    fn take_error(&self) -> Option<RuntimeError> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }
}

/// The settings every Kafka client of this process shares.
pub(crate) fn client_config(config: &Config) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap)
        .set("client.id", format!("odradek-processor-{}", config.name));
    for (k, v) in &config.kafka_config {
        c.set(k, v);
    }
    c
}

/// Runs `odradek processor`: the built-in job named by `--job`, until `shutdown` is cancelled (then
/// it commits every partition before returning) or a fatal error.
///
/// # Errors
/// Bad flags, an unknown job, an unreachable cluster, or a fatal runtime error.
pub async fn run(args: ProcessorArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = args.validate()?;
    let job = crate::jobs::builtin(&config).map_err(anyhow::Error::msg)?;
    run_job(config, job, shutdown).await
}

/// Runs any [`Job`] (a user binary's own) with the runtime; see [`run`].
///
/// # Errors
/// As for [`run`].
pub async fn run_job(
    config: Config,
    job: Arc<dyn Job>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let stop_http = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(config.http)
        .await
        .with_context(|| format!("cannot listen on {}", config.http))?;
    let http = tokio::spawn({
        let stop = stop_http.clone();
        let app = router(metrics.clone());
        async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        }
    });
    tokio::spawn(
        metrics
            .clone()
            .measure_rate(std::time::Duration::from_secs(5), stop_http.clone()),
    );
    let result = run_inner(config, job, metrics, shutdown).await;
    stop_http.cancel();
    let _ = http.await;
    result
}

async fn run_inner(
    config: Config,
    job: Arc<dyn Job>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let partitions = admin::ensure_changelogs(&config, job.as_ref(), &shutdown).await?;
    tracing::info!(
        processor = config.name,
        input = job.input(),
        partitions,
        instance_id = config.instance_id,
        "starting"
    );
    let producer: FutureProducer = client_config(&config)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .map_err(RuntimeError::kafka("create producer"))?;
    let (control_tx, control_rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        config,
        job,
        producer,
        metrics,
        control: control_tx,
        fatal: CancellationToken::new(),
        error: Mutex::new(None),
    });
    let handle = tokio::runtime::Handle::current();
    let poll = std::thread::Builder::new()
        .name("odradek-poll".to_owned())
        .spawn({
            let shared = shared.clone();
            let shutdown = shutdown.clone();
            move || consumer::poll_loop(&shared, &handle, &control_rx, &shutdown)
        })
        .context("cannot start the poll thread")?;
    let joined = tokio::task::spawn_blocking(move || poll.join()).await;
    match joined {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => shared.fail(e),
        Ok(Err(_)) | Err(_) => anyhow::bail!("the poll thread panicked"),
    }
    if let Some(e) = shared.take_error() {
        return Err(e.into());
    }
    tracing::info!("stopped after committing every partition");
    Ok(())
}
