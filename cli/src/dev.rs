//! `odradek dev`: a broker with data in a local directory, the demo topics created, the commands to try
//! it printed, and the demo pipeline running: a generator of page views and profile updates, the
//! `pageview-count` and `profile-fanout` jobs, and a live line of the current window's top pages.
//! Stops cleanly on Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use odradek_broker::server::{TopicError, TopicSpec};
use odradek_broker::{Broker, BrokerConfig};
use odradek_processor::demo::{DemoOptions, run_demo};
use tokio_util::sync::CancellationToken;

/// Topics of the demo pipeline and their partition counts.
pub(crate) const DEMO_TOPICS: &[(&str, i32)] = &[("page-views", 4), ("user-profile-updates", 4)];

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DevArgs {
    /// Directory for the broker's data (created if absent).
    #[arg(long, env = "ODRADEK_DATA_DIR", default_value = ".odradek/dev")]
    data_dir: PathBuf,
    /// Kafka listener.
    #[arg(long, env = "ODRADEK_LISTEN", default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// HTTP listener for /metrics, /healthz, /readyz.
    #[arg(long, env = "ODRADEK_HTTP", default_value = "127.0.0.1:9644")]
    http: SocketAddr,
    /// Directory for the demo processors' local stores.
    #[arg(long, default_value = ".odradek/demo")]
    state_dir: PathBuf,
    /// HTTP listener of the demo's pageview-count processor.
    #[arg(long, default_value = "127.0.0.1:9646")]
    pageview_http: SocketAddr,
    /// HTTP listener of the demo's profile-fanout processor.
    #[arg(long, default_value = "127.0.0.1:9647")]
    profile_http: SocketAddr,
    /// Run only the broker, without the demo generator and jobs.
    #[arg(long)]
    no_demo: bool,
}

pub(crate) async fn run(args: DevArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = BrokerConfig::local(args.data_dir.clone(), args.listen, args.http);
    let broker = Broker::open(config).await?;
    for (name, partitions) in DEMO_TOPICS {
        let spec = TopicSpec {
            name: (*name).to_owned(),
            partitions: *partitions,
            replication_factor: 1,
            configs: Default::default(),
            assignments: None,
        };
        match broker.create_topic(spec, false).await {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The broker outlives the demo's processors, which commit their offsets to it on the way out.
    let broker_stop = CancellationToken::new();
    let serving = tokio::spawn(broker.clone().serve(broker_stop.clone()));
    let addr = args.listen;
    println!(
        "\nOdradek dev cluster on {addr} (data in {dir}, metrics on http://{http}/metrics)\n\
         Topics: {topics}\n\n\
         Produce:  echo 'home:{{\"page\":\"/home\"}}' | kcat -b {addr} -t page-views -P -K:\n\
         Consume:  kcat -b {addr} -t page-views -C -o beginning -f '%k %s\\n'\n\
         Metadata: kcat -b {addr} -L\n\n\
         Ctrl-C stops it.\n",
        dir = args.data_dir.display(),
        http = args.http,
        topics = DEMO_TOPICS
            .iter()
            .map(|t| t.0)
            .collect::<Vec<_>>()
            .join(", "),
    );
    if !args.no_demo {
        let mut demo = DemoOptions::new(&addr.to_string());
        demo.state_dir = args.state_dir.clone();
        demo.pageview_http = args.pageview_http;
        demo.profile_http = args.profile_http;
        println!(
            "Demo: page views and profile updates generated; pageview-count -> pageview-counts, \
             profile-fanout -> newsfeed, search-index. Top pages every few seconds:\n"
        );
        // A failure of the demo does not stop the broker.
        if let Err(e) = run_demo(demo, shutdown.clone()).await {
            tracing::error!(error = %e, "demo pipeline stopped");
        }
    }
    shutdown.cancelled().await;
    broker_stop.cancel();
    serving.await??;
    Ok(())
}
