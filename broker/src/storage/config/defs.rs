//! The table of Kafka topic configs: names, defaults as Kafka renders them, and validation rules
//! (from Kafka's `LogConfig` definitions, Kafka 4.x).

use super::{CleanupPolicy, ConfigError};

/// How a config value is validated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConfigType {
    /// A 64-bit integer at least `min`.
    Long {
        /// Smallest accepted value.
        min: i64,
    },
    /// A 32-bit integer in `min..=max`.
    Int {
        /// Smallest accepted value.
        min: i32,
        /// Largest accepted value.
        max: i32,
    },
    /// `true` or `false`, any case.
    Boolean,
    /// A floating point number in `min..=max`.
    Double {
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// One of a fixed set of strings.
    OneOf(&'static [&'static str]),
    /// A comma separated list of `delete` and `compact`.
    CleanupPolicy,
    /// Any string (replica throttle lists).
    Text,
}

/// One Kafka topic config: its name, its default rendered as Kafka does, and its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigDef {
    /// Kafka's config name.
    pub name: &'static str,
    /// The default value as DescribeConfigs shows it.
    pub default: &'static str,
    /// How values are validated.
    pub kind: ConfigType,
    /// Internal configs are accepted but not listed by DescribeConfigs.
    pub internal: bool,
}

impl ConfigDef {
    /// The DescribeConfigs `config_type` code (Kafka's `ConfigType`: 1 boolean, 2 string, 3 int,
    /// 5 long, 6 double, 7 list).
    #[must_use]
    pub fn kafka_type(&self) -> i8 {
        match self.kind {
            ConfigType::Boolean => 1,
            ConfigType::OneOf(_) => 2,
            ConfigType::Int { .. } => 3,
            ConfigType::Long { .. } => 5,
            ConfigType::Double { .. } => 6,
            ConfigType::CleanupPolicy | ConfigType::Text => 7,
        }
    }
}

const fn def(name: &'static str, default: &'static str, kind: ConfigType) -> ConfigDef {
    ConfigDef {
        name,
        default,
        kind,
        internal: false,
    }
}

const LONG_MAX: &str = "9223372036854775807";
const fn long(min: i64) -> ConfigType {
    ConfigType::Long { min }
}
const fn int(min: i32) -> ConfigType {
    ConfigType::Int { min, max: i32::MAX }
}

/// Every topic config the broker accepts, in Kafka's names, with Kafka's defaults (Kafka 4.x).
pub(super) const KNOWN_CONFIGS: &[ConfigDef] = &[
    def("cleanup.policy", "delete", ConfigType::CleanupPolicy),
    def(
        "compression.type",
        "producer",
        ConfigType::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    ),
    def(
        "compression.gzip.level",
        "-1",
        ConfigType::Int { min: -1, max: 9 },
    ),
    def(
        "compression.lz4.level",
        "9",
        ConfigType::Int { min: 1, max: 17 },
    ),
    def(
        "compression.zstd.level",
        "3",
        ConfigType::Int {
            min: -131_072,
            max: 22,
        },
    ),
    def("delete.retention.ms", "86400000", long(0)),
    def("file.delete.delay.ms", "60000", long(0)),
    def("flush.messages", LONG_MAX, long(1)),
    def("flush.ms", LONG_MAX, long(0)),
    def(
        "follower.replication.throttled.replicas",
        "",
        ConfigType::Text,
    ),
    def("index.interval.bytes", "4096", int(0)),
    def(
        "leader.replication.throttled.replicas",
        "",
        ConfigType::Text,
    ),
    def("local.retention.bytes", "-2", long(-2)),
    def("local.retention.ms", "-2", long(-2)),
    def("max.compaction.lag.ms", LONG_MAX, long(1)),
    def("max.message.bytes", "1048588", int(0)),
    def("message.timestamp.after.max.ms", "3600000", long(0)),
    def("message.timestamp.before.max.ms", LONG_MAX, long(0)),
    def(
        "message.timestamp.type",
        "CreateTime",
        ConfigType::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    def(
        "min.cleanable.dirty.ratio",
        "0.5",
        ConfigType::Double { min: 0.0, max: 1.0 },
    ),
    def("min.compaction.lag.ms", "0", long(0)),
    def("min.insync.replicas", "1", int(1)),
    def("preallocate", "false", ConfigType::Boolean),
    def("remote.log.copy.disable", "false", ConfigType::Boolean),
    def("remote.log.delete.on.disable", "false", ConfigType::Boolean),
    def("remote.storage.enable", "false", ConfigType::Boolean),
    def("retention.bytes", "-1", long(i64::MIN)),
    def("retention.ms", "604800000", long(-1)),
    def("segment.bytes", "1073741824", int(1024 * 1024)),
    def("segment.index.bytes", "10485760", int(4)),
    def("segment.jitter.ms", "0", long(0)),
    def("segment.ms", "604800000", long(1)),
    def(
        "unclean.leader.election.enable",
        "false",
        ConfigType::Boolean,
    ),
    // Kafka's testing override that bypasses segment.bytes' 1 MiB minimum.
    ConfigDef {
        name: "internal.segment.bytes",
        default: "",
        kind: int(1),
        internal: true,
    },
];

/// Every known topic config (including internal ones), with defaults: the basis of
/// DescribeConfigs for "all configs".
#[must_use]
pub fn known_configs() -> &'static [ConfigDef] {
    KNOWN_CONFIGS
}

/// Looks up a topic config by its Kafka name.
#[must_use]
pub fn config_def(name: &str) -> Option<&'static ConfigDef> {
    KNOWN_CONFIGS.iter().find(|d| d.name == name)
}

fn invalid(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        name: name.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Checks `value` against the definition's type, returning it normalised (trimmed).
pub(super) fn validate(def: &ConfigDef, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    match def.kind {
        ConfigType::Long { min } => {
            let n: i64 = v
                .parse()
                .map_err(|_| invalid(def.name, value, "expected a 64-bit integer"))?;
            if n < min {
                return Err(invalid(def.name, value, format!("must be at least {min}")));
            }
        }
        ConfigType::Int { min, max } => {
            let n: i32 = v
                .parse()
                .map_err(|_| invalid(def.name, value, "expected a 32-bit integer"))?;
            if n < min || n > max {
                return Err(invalid(
                    def.name,
                    value,
                    format!("must be between {min} and {max}"),
                ));
            }
        }
        ConfigType::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(invalid(def.name, value, "expected true or false"));
            }
            return Ok(v.to_ascii_lowercase());
        }
        ConfigType::Double { min, max } => {
            let n: f64 = v
                .parse()
                .map_err(|_| invalid(def.name, value, "expected a number"))?;
            if !(min..=max).contains(&n) {
                return Err(invalid(
                    def.name,
                    value,
                    format!("must be between {min} and {max}"),
                ));
            }
        }
        ConfigType::OneOf(allowed) => {
            if !allowed.contains(&v) {
                return Err(invalid(
                    def.name,
                    value,
                    format!("must be one of {}", allowed.join(", ")),
                ));
            }
        }
        ConfigType::CleanupPolicy => {
            let policy = CleanupPolicy::parse(v)
                .ok_or_else(|| invalid(def.name, value, "must be a list of delete and compact"))?;
            return Ok(policy.as_str().to_owned());
        }
        ConfigType::Text => {}
    }
    Ok(v.to_owned())
}
