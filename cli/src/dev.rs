//! `odradek dev`: a broker with data in a local directory, the demo topics created, and the commands to
//! try it printed. Stops cleanly on Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use odradek_broker::server::{TopicError, TopicSpec};
use odradek_broker::{Broker, BrokerConfig};
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
}

pub(crate) async fn run(args: DevArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = BrokerConfig::local(args.data_dir.clone(), args.listen, args.http);
    let broker = Broker::open(config)?;
    for (name, partitions) in DEMO_TOPICS {
        let spec = TopicSpec {
            name: (*name).to_owned(),
            partitions: *partitions,
            replication_factor: 1,
            configs: Default::default(),
            assignments: None,
        };
        match broker.create_topic(spec, false) {
            Ok(_) | Err(TopicError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let serving = tokio::spawn(broker.clone().serve(shutdown.clone()));
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
    serving.await??;
    Ok(())
}
