//! Topic-level log configuration: Kafka's topic config names, defaults and validation.
//!
//! [`LogConfig`] holds the typed settings the log acts on, plus the other Kafka topic configs the
//! broker accepts and reports but does not act on (e.g. `compression.type`). The API layer uses
//! [`LogConfig::from_kafka_configs`] for CreateTopics/AlterConfigs and [`LogConfig::describe`] /
//! [`known_configs`] for DescribeConfigs, so names, defaults and validation rules follow Kafka's
//! `LogConfig` definitions.

use std::collections::{BTreeMap, BTreeSet};

mod defs;

pub use defs::{ConfigDef, ConfigType, config_def, known_configs};
use defs::{KNOWN_CONFIGS, validate};

/// What happens to old data: Kafka's `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Delete whole segments by retention time and size.
    #[default]
    Delete,
    /// Keep the latest record per key.
    Compact,
    /// Both: compact, and delete by retention.
    CompactDelete,
}

impl CleanupPolicy {
    /// True when retention by time and size applies.
    #[must_use]
    pub fn deletes(self) -> bool {
        matches!(self, Self::Delete | Self::CompactDelete)
    }

    /// True when key compaction applies.
    #[must_use]
    pub fn compacts(self) -> bool {
        matches!(self, Self::Compact | Self::CompactDelete)
    }

    /// The Kafka config value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::Compact => "compact",
            Self::CompactDelete => "compact,delete",
        }
    }

    /// Parses a Kafka list value such as `"delete"`, `"compact"` or `"delete, compact"`.
    fn parse(value: &str) -> Option<Self> {
        let (mut delete, mut compact) = (false, false);
        for item in value.split(',').map(str::trim) {
            match item {
                "delete" => delete = true,
                "compact" => compact = true,
                _ => return None,
            }
        }
        match (delete, compact) {
            (true, false) => Some(Self::Delete),
            (false, true) => Some(Self::Compact),
            (true, true) => Some(Self::CompactDelete),
            (false, false) => None,
        }
    }
}

/// Kafka's `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageTimestampType {
    /// Keep the producer's timestamps.
    #[default]
    CreateTime,
    /// Stamp each batch with the broker's clock on append.
    LogAppendTime,
}

impl MessageTimestampType {
    /// The Kafka config value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateTime => "CreateTime",
            Self::LogAppendTime => "LogAppendTime",
        }
    }
}

/// Errors of topic config parsing; the API layer maps them to `INVALID_CONFIG`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The name is not a Kafka topic config.
    #[error("unknown topic config {name}")]
    Unknown {
        /// The config name given.
        name: String,
    },
    /// The value does not satisfy the config's type or range.
    #[error("invalid value {value} for topic config {name}: {reason}")]
    InvalidValue {
        /// The config name.
        name: String,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

/// One row of DescribeConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// Kafka's config name.
    pub name: &'static str,
    /// The effective value.
    pub value: String,
    /// True when the topic does not override it.
    pub is_default: bool,
}

/// Settings of one partition log, Kafka topic configs with Kafka's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: roll the active segment when it would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's timestamps span longer than this.
    pub segment_ms: u64,
    /// `retention.ms`: delete segments whose newest timestamp is older; -1 keeps forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger; -1 is unbounded.
    pub retention_bytes: i64,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `max.message.bytes`: largest batch the API layer accepts.
    pub max_message_bytes: u32,
    /// `delete.retention.ms`: how long compaction keeps tombstones.
    pub delete_retention_ms: u64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: u64,
    /// `flush.messages`: fsync after this many records; the default leaves it to the OS.
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the oldest unflushed append is this old; the default leaves it to the OS.
    pub flush_ms: u64,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u32,
    /// `min.insync.replicas`: stored for the replication layer.
    pub min_insync_replicas: u32,
    /// `message.timestamp.type`.
    pub message_timestamp_type: MessageTimestampType,
    /// Other accepted Kafka topic configs, stored and reported but not acted on here.
    pub other: BTreeMap<String, String>,
    /// Names set explicitly (topic overrides), for DescribeConfigs' `is_default`.
    pub overrides: BTreeSet<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            retention_ms: 7 * 24 * 3_600_000,
            retention_bytes: -1,
            cleanup_policy: CleanupPolicy::Delete,
            max_message_bytes: 1_048_588,
            delete_retention_ms: 24 * 3_600_000,
            min_compaction_lag_ms: 0,
            flush_messages: i64::MAX as u64,
            flush_ms: i64::MAX as u64,
            index_interval_bytes: 4096,
            min_insync_replicas: 1,
            message_timestamp_type: MessageTimestampType::CreateTime,
            other: BTreeMap::new(),
            overrides: BTreeSet::new(),
        }
    }
}

/// Parses an already validated integer; validation guarantees success, the fallback is unreachable.
fn num<T: std::str::FromStr>(v: &str, fallback: T) -> T {
    v.parse().unwrap_or(fallback)
}

impl LogConfig {
    /// Builds a config from Kafka topic configs, starting from Kafka's defaults.
    ///
    /// # Errors
    /// [`ConfigError::Unknown`] naming an unknown key, [`ConfigError::InvalidValue`] naming the key
    /// and value that fail validation.
    pub fn from_kafka_configs(configs: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        for (name, value) in configs {
            config.set(name, value)?;
        }
        Ok(config)
    }

    /// Sets one topic config by its Kafka name (AlterConfigs SET).
    ///
    /// # Errors
    /// As [`LogConfig::from_kafka_configs`]; on error `self` is unchanged.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        let def = config_def(name).ok_or_else(|| ConfigError::Unknown {
            name: name.to_owned(),
        })?;
        let v = validate(def, value)?;
        self.apply(def, &v);
        self.overrides.insert(def.name.to_owned());
        Ok(())
    }

    /// Resets one topic config to its default (AlterConfigs DELETE).
    ///
    /// # Errors
    /// [`ConfigError::Unknown`] for an unknown name.
    pub fn reset(&mut self, name: &str) -> Result<(), ConfigError> {
        let def = config_def(name).ok_or_else(|| ConfigError::Unknown {
            name: name.to_owned(),
        })?;
        self.overrides.remove(def.name);
        self.other.remove(def.name);
        if def.name == "internal.segment.bytes" {
            // Back to segment.bytes: its override if there is one, else the default.
            let fallback = Self::default().segment_bytes;
            self.segment_bytes = self
                .other
                .get("segment.bytes")
                .map_or(fallback, |v| num(v, fallback));
        } else {
            self.apply(def, def.default);
        }
        Ok(())
    }

    fn apply(&mut self, def: &ConfigDef, v: &str) {
        let d = Self::default();
        match def.name {
            "segment.bytes" => {
                // Kept verbatim too, so it survives an internal.segment.bytes override.
                if v == def.default {
                    self.other.remove(def.name);
                } else {
                    self.other.insert(def.name.to_owned(), v.to_owned());
                }
                if !self.overrides.contains("internal.segment.bytes") {
                    self.segment_bytes = num(v, d.segment_bytes);
                }
            }
            "internal.segment.bytes" => {
                self.segment_bytes = num(v, d.segment_bytes);
                self.other.insert(def.name.to_owned(), v.to_owned());
            }
            "segment.ms" => self.segment_ms = num(v, d.segment_ms),
            "retention.ms" => self.retention_ms = num(v, d.retention_ms),
            "retention.bytes" => self.retention_bytes = num(v, d.retention_bytes),
            "cleanup.policy" => {
                self.cleanup_policy = CleanupPolicy::parse(v).unwrap_or(d.cleanup_policy);
            }
            "max.message.bytes" => self.max_message_bytes = num(v, d.max_message_bytes),
            "delete.retention.ms" => self.delete_retention_ms = num(v, d.delete_retention_ms),
            "min.compaction.lag.ms" => {
                self.min_compaction_lag_ms = num(v, d.min_compaction_lag_ms);
            }
            "flush.messages" => self.flush_messages = num(v, d.flush_messages),
            "flush.ms" => self.flush_ms = num(v, d.flush_ms),
            "index.interval.bytes" => self.index_interval_bytes = num(v, d.index_interval_bytes),
            "min.insync.replicas" => self.min_insync_replicas = num(v, d.min_insync_replicas),
            "message.timestamp.type" => {
                self.message_timestamp_type = if v == "LogAppendTime" {
                    MessageTimestampType::LogAppendTime
                } else {
                    MessageTimestampType::CreateTime
                };
            }
            _ => {
                if v == def.default {
                    self.other.remove(def.name);
                } else {
                    self.other.insert(def.name.to_owned(), v.to_owned());
                }
            }
        }
    }

    /// The effective value of a config by Kafka name, rendered as Kafka does.
    #[must_use]
    pub fn value_of(&self, name: &str) -> Option<String> {
        let def = config_def(name)?;
        let v = match def.name {
            "segment.bytes" if self.overrides.contains("internal.segment.bytes") => self
                .other
                .get(def.name)
                .cloned()
                .unwrap_or_else(|| def.default.to_owned()),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "cleanup.policy" => self.cleanup_policy.as_str().to_owned(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms.to_string(),
            "flush.messages" => self.flush_messages.to_string(),
            "flush.ms" => self.flush_ms.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "min.insync.replicas" => self.min_insync_replicas.to_string(),
            "message.timestamp.type" => self.message_timestamp_type.as_str().to_owned(),
            other => self
                .other
                .get(other)
                .cloned()
                .unwrap_or_else(|| def.default.to_owned()),
        };
        Some(v)
    }

    /// Every non-internal topic config with its effective value (DescribeConfigs).
    #[must_use]
    pub fn describe(&self) -> Vec<ConfigEntry> {
        KNOWN_CONFIGS
            .iter()
            .filter(|d| !d.internal)
            .map(|d| {
                let value = self.value_of(d.name).unwrap_or_default();
                ConfigEntry {
                    name: d.name,
                    is_default: !self.overrides.contains(d.name) && value == d.default,
                    value,
                }
            })
            .collect()
    }

    /// The explicitly set configs by Kafka name, suitable for persisting and for
    /// [`LogConfig::from_kafka_configs`].
    #[must_use]
    pub fn to_kafka_configs(&self) -> BTreeMap<String, String> {
        self.overrides
            .iter()
            .filter_map(|name| self.value_of(name).map(|v| (name.clone(), v)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
