//! The `odradek` binary: one subcommand per role.

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// Odradek: a Kubernetes-native, Kafka-wire-compatible log cluster.
#[derive(Debug, Parser)]
#[command(name = "odradek", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Kubernetes operator (Broker, Topic and Processor controllers).
    Operator(odradek_operator::OperatorArgs),
    /// Write the CustomResourceDefinitions to manifests/crds/.
    Crdgen(odradek_operator::crdgen::CrdgenArgs),
}

/// Installs the log subscriber: `ODRADEK_LOG`, else `RUST_LOG`, else `info`.
fn init_tracing() {
    let filter = std::env::var("ODRADEK_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .or_else(|| tracing_subscriber::EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// A token cancelled on SIGTERM or Ctrl-C.
fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGTERM");
                        let _ = tokio::signal::ctrl_c().await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Operator(args) => odradek_operator::run(args, shutdown_token()).await,
        Command::Crdgen(args) => odradek_operator::crdgen::run(&args),
    }
}
