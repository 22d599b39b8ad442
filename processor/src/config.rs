//! Command-line flags of `odradek processor` and the validated [`Config`] they become.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Flags of `odradek processor`. Every flag also reads an `ODRADEK_...` environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ProcessorArgs {
    /// Kafka bootstrap servers (host:port, comma separated).
    #[arg(long, env = "ODRADEK_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Built-in job to run: pageview-count or profile-fanout.
    #[arg(long, env = "ODRADEK_JOB")]
    pub job: String,
    /// Processor name: the consumer group id and the prefix of changelog topics (default: the job).
    #[arg(long, env = "ODRADEK_PROCESSOR_NAME")]
    pub name: Option<String>,
    /// Static group member id (`group.instance.id`), normally the pod name (default: the host name).
    #[arg(long, env = "ODRADEK_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Input topic (default: the job's, `page-views` or `user-profile-updates`).
    #[arg(long, env = "ODRADEK_INPUT")]
    pub input: Option<String>,
    /// Output topic of a job role, `ROLE=TOPIC` (roles: counts; newsfeed, search). Repeatable.
    #[arg(long = "output", env = "ODRADEK_OUTPUTS", value_delimiter = ',')]
    pub outputs: Vec<String>,
    /// Directory of the local stores.
    #[arg(long, env = "ODRADEK_STATE_DIR", default_value = ".odradek/processor")]
    pub state_dir: PathBuf,
    /// Address of the HTTP server for /metrics, /healthz and /readyz.
    #[arg(long, env = "ODRADEK_HTTP", default_value = "127.0.0.1:9645")]
    pub http: SocketAddr,
    /// Milliseconds between commits (flush outputs and changelog, checkpoint, commit offsets).
    #[arg(long, env = "ODRADEK_COMMIT_INTERVAL_MS", default_value_t = 1_000)]
    pub commit_interval_ms: u64,
    /// Window size of pageview-count in milliseconds.
    #[arg(long, env = "ODRADEK_WINDOW_MS", default_value_t = 300_000)]
    pub window_ms: i64,
    /// Grace period of pageview-count for late events, in milliseconds.
    #[arg(long, env = "ODRADEK_GRACE_MS", default_value_t = 30_000)]
    pub grace_ms: i64,
    /// Replication factor of changelog topics the runtime creates.
    #[arg(
        long,
        env = "ODRADEK_CHANGELOG_REPLICATION_FACTOR",
        default_value_t = 1
    )]
    pub changelog_replication_factor: i32,
    /// Consumer group session timeout in milliseconds (how long a silent static member keeps its
    /// partitions).
    #[arg(long, env = "ODRADEK_SESSION_TIMEOUT_MS", default_value_t = 30_000)]
    pub session_timeout_ms: u64,
    /// Extra librdkafka properties for every client, `KEY=VALUE`. Repeatable.
    #[arg(
        long = "kafka-config",
        env = "ODRADEK_KAFKA_CONFIG",
        value_delimiter = ','
    )]
    pub kafka_config: Vec<String>,
    /// Milliseconds a graceful shutdown may take before the process gives up committing.
    #[arg(long, env = "ODRADEK_SHUTDOWN_GRACE_MS", default_value_t = 30_000)]
    pub shutdown_grace_ms: u64,
}

/// A configuration value that makes no sense, named with its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A numeric flag is out of range.
    #[error("--{flag} is {value}: {why}")]
    OutOfRange {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
        /// The rule.
        why: &'static str,
    },
    /// A `KEY=VALUE` flag lacks the `=`.
    #[error("--{flag} value {value:?} is not KEY=VALUE")]
    NotAPair {
        /// The flag.
        flag: &'static str,
        /// Its value.
        value: String,
    },
    /// A required value is empty.
    #[error("--{0} must not be empty")]
    Empty(&'static str),
}

/// The validated configuration of a processor process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The job name.
    pub job: String,
    /// Processor name (group id, changelog prefix).
    pub name: String,
    /// Static member id, if any.
    pub instance_id: Option<String>,
    /// Input topic override.
    pub input: Option<String>,
    /// Output topics by role.
    pub outputs: Vec<(String, String)>,
    /// Local store directory.
    pub state_dir: PathBuf,
    /// HTTP address.
    pub http: SocketAddr,
    /// Time between commits.
    pub commit_interval: Duration,
    /// pageview-count window size (ms).
    pub window_ms: i64,
    /// pageview-count grace (ms).
    pub grace_ms: i64,
    /// Replication factor of created changelog topics.
    pub changelog_replication_factor: i32,
    /// Group session timeout.
    pub session_timeout: Duration,
    /// Extra librdkafka properties.
    pub kafka_config: Vec<(String, String)>,
    /// Graceful shutdown limit.
    pub shutdown_grace: Duration,
}

fn pairs(flag: &'static str, values: &[String]) -> Result<Vec<(String, String)>, ConfigError> {
    values
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| ConfigError::NotAPair {
                    flag,
                    value: v.clone(),
                })
        })
        .collect()
}

fn default_instance_id() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

impl ProcessorArgs {
    /// Validates the flags into a [`Config`].
    ///
    /// # Errors
    /// The first flag whose value makes no sense.
    pub fn validate(self) -> Result<Config, ConfigError> {
        if self.job.is_empty() {
            return Err(ConfigError::Empty("job"));
        }
        if self.bootstrap.is_empty() {
            return Err(ConfigError::Empty("bootstrap"));
        }
        let out_of_range = |flag, value: String, why| ConfigError::OutOfRange { flag, value, why };
        if self.commit_interval_ms == 0 {
            return Err(out_of_range(
                "commit-interval-ms",
                "0".into(),
                "must be positive",
            ));
        }
        if self.window_ms <= 0 {
            return Err(out_of_range(
                "window-ms",
                self.window_ms.to_string(),
                "must be positive",
            ));
        }
        if self.grace_ms < 0 {
            return Err(out_of_range(
                "grace-ms",
                self.grace_ms.to_string(),
                "must not be negative",
            ));
        }
        if self.changelog_replication_factor < 1 {
            return Err(out_of_range(
                "changelog-replication-factor",
                self.changelog_replication_factor.to_string(),
                "must be at least 1",
            ));
        }
        Ok(Config {
            name: self
                .name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| self.job.clone()),
            instance_id: self
                .instance_id
                .filter(|i| !i.is_empty())
                .or_else(default_instance_id),
            outputs: pairs("output", &self.outputs)?,
            kafka_config: pairs("kafka-config", &self.kafka_config)?,
            bootstrap: self.bootstrap,
            job: self.job,
            input: self.input.filter(|i| !i.is_empty()),
            state_dir: self.state_dir,
            http: self.http,
            commit_interval: Duration::from_millis(self.commit_interval_ms),
            window_ms: self.window_ms,
            grace_ms: self.grace_ms,
            changelog_replication_factor: self.changelog_replication_factor,
            session_timeout: Duration::from_millis(self.session_timeout_ms),
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        })
    }
}

impl Config {
    /// The topic configured for output `role`, if any.
    #[must_use]
    pub fn output(&self, role: &str) -> Option<&str> {
        self.outputs
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, t)| t.as_str())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProcessorArgs,
    }

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["odradek", "--job", "pageview-count"];
        all.extend_from_slice(args);
        Cli::parse_from(all).args.validate()
    }

    #[test]
    fn defaults_name_the_processor_after_its_job() {
        let c = parse(&["--instance-id", "pod-0"]).unwrap();
        assert_eq!(c.name, "pageview-count");
        assert_eq!(c.instance_id.as_deref(), Some("pod-0"));
        assert_eq!(c.commit_interval, Duration::from_secs(1));
        assert!(c.outputs.is_empty());
    }

    #[test]
    fn outputs_and_kafka_config_are_key_value_pairs() {
        let c = parse(&["--output", "counts=views", "--kafka-config", "a=1,b = 2"]).unwrap();
        assert_eq!(c.output("counts"), Some("views"));
        assert_eq!(c.output("search"), None);
        assert_eq!(
            c.kafka_config,
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        let err = parse(&["--output", "views"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"--output value "views" is not KEY=VALUE"#
        );
    }

    #[test]
    fn bad_numbers_are_named_with_their_value() {
        let err = parse(&["--window-ms", "0"]).unwrap_err();
        assert_eq!(err.to_string(), "--window-ms is 0: must be positive");
        let err = parse(&["--grace-ms=-5"]).unwrap_err();
        assert_eq!(err.to_string(), "--grace-ms is -5: must not be negative");
        assert!(parse(&["--commit-interval-ms", "0"]).is_err());
        assert!(parse(&["--changelog-replication-factor", "0"]).is_err());
    }
}
