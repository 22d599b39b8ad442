//! `odradek`: one binary for every role of an Odradek cluster.
//!
//! - `odradek broker`: a Kafka-compatible broker.
//! - `odradek dev`: a local broker with the demo topics, for trying things out without Kubernetes.
//! - `odradek operator`: the Kubernetes operator (Broker, Topic and Processor controllers).
//! - `odradek crdgen`: writes the CustomResourceDefinitions to `manifests/crds/`.
//! - `odradek processor`: a stream processor running a built-in job.

mod dev;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "odradek",
    version,
    about = "Kubernetes-native, Kafka-compatible log cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker.
    Broker(odradek_broker::BrokerArgs),
    /// Run a local broker with the demo topics (no Kubernetes needed).
    Dev(dev::DevArgs),
    /// Run the Kubernetes operator (Broker, Topic and Processor controllers).
    Operator(odradek_operator::OperatorArgs),
    /// Write the CustomResourceDefinitions to manifests/crds/.
    Crdgen(odradek_operator::crdgen::CrdgenArgs),
    /// Run a stream processor (a built-in job) against a cluster.
    Processor(odradek_processor::ProcessorArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ODRADEK_LOG")
                .or_else(|_| EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        match cli.command {
            Command::Broker(args) => odradek_broker::run(args, shutdown).await,
            Command::Dev(args) => dev::run(args, shutdown).await,
            Command::Operator(args) => odradek_operator::run(args, shutdown).await,
            Command::Crdgen(args) => odradek_operator::crdgen::run(&args),
            Command::Processor(args) => odradek_processor::run(args, shutdown).await,
        }
    })
}

/// Cancels `token` on SIGTERM or Ctrl-C; a second signal exits at once.
async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        tracing::error!("cannot listen for SIGTERM");
        return;
    };
    for n in 0.. {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        if n > 0 {
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        }
        tracing::info!("signal received: shutting down");
        token.cancel();
    }
}
