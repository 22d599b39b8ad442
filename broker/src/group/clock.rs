//! Time as the coordinator sees it: a monotonic instant for timers and a wall-clock millisecond
//! timestamp for what is persisted (commit times, state change times).
//!
//! The wall clock is derived from the monotonic one (`start wall time + elapsed`), so tests that pause
//! and advance tokio's clock move both together, and offset expiry can be tested without waiting.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A reading of both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Now {
    /// For deadlines.
    pub(crate) instant: Instant,
    /// Milliseconds since the Unix epoch.
    pub(crate) wall_ms: i64,
}

/// The coordinator's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    start: Instant,
    start_wall_ms: i64,
}

impl Clock {
    /// Starts the clock at the current time.
    pub(crate) fn new() -> Self {
        let start_wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self {
            start: Instant::now(),
            start_wall_ms,
        }
    }

    /// Reads the clock.
    pub(crate) fn now(&self) -> Now {
        let instant = Instant::now();
        let elapsed =
            i64::try_from(instant.duration_since(self.start).as_millis()).unwrap_or(i64::MAX);
        Now {
            instant,
            wall_ms: self.start_wall_ms.saturating_add(elapsed),
        }
    }
}
