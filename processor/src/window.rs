//! Tumbling event-time windows with a grace period, as pure arithmetic.
//!
//! A window `[start, start + size)` accepts events until the stream time (the largest event time the
//! task has seen) reaches `start + size + grace`; after that it is closed, late events for it are
//! dropped, and its state can be expired. Keeping the rule pure makes it easy to test at the edges.

/// Tumbling windows of `size_ms`, aligned to the epoch, accepting events `grace_ms` late.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TumblingWindows {
    size_ms: i64,
    grace_ms: i64,
}

impl TumblingWindows {
    /// Windows of `size_ms` with `grace_ms` of grace. `size_ms` is clamped to at least 1 and
    /// `grace_ms` to at least 0 (the config validates both before this is built).
    #[must_use]
    pub fn new(size_ms: i64, grace_ms: i64) -> Self {
        Self {
            size_ms: size_ms.max(1),
            grace_ms: grace_ms.max(0),
        }
    }

    /// The window size in milliseconds.
    #[must_use]
    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// The start of the window that contains `timestamp` (also for negative timestamps).
    #[must_use]
    pub fn window_start(&self, timestamp: i64) -> i64 {
        timestamp - timestamp.rem_euclid(self.size_ms)
    }

    /// The end (exclusive) of the window starting at `start`.
    #[must_use]
    pub fn window_end(&self, start: i64) -> i64 {
        start.saturating_add(self.size_ms)
    }

    /// Whether the window starting at `start` is closed at `stream_time`.
    #[must_use]
    pub fn is_closed(&self, start: i64, stream_time: i64) -> bool {
        stream_time >= self.window_end(start).saturating_add(self.grace_ms)
    }

    /// The smallest window start that is still open at `stream_time`: every window starting below it
    /// is closed and may be expired.
    #[must_use]
    pub fn first_open_start(&self, stream_time: i64) -> i64 {
        // Closed iff start + size + grace <= stream_time.
        stream_time
            .saturating_sub(self.size_ms)
            .saturating_sub(self.grace_ms)
            .saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        let w = TumblingWindows::new(300_000, 0);
        assert_eq!(w.window_start(0), 0);
        assert_eq!(w.window_start(299_999), 0);
        assert_eq!(w.window_start(300_000), 300_000);
        assert_eq!(w.window_start(-1), -300_000);
    }

    #[test]
    fn a_window_closes_when_stream_time_passes_its_end_plus_grace() {
        let w = TumblingWindows::new(100, 30);
        assert!(!w.is_closed(0, 99));
        assert!(!w.is_closed(0, 129));
        assert!(w.is_closed(0, 130));
        let no_grace = TumblingWindows::new(100, 0);
        assert!(no_grace.is_closed(0, 100));
    }

    proptest! {
        #[test]
        fn every_timestamp_lies_in_its_window(ts in -1_000_000_000i64..1_000_000_000, size in 1i64..1_000_000) {
            let w = TumblingWindows::new(size, 0);
            let start = w.window_start(ts);
            prop_assert!(start <= ts && ts < w.window_end(start));
            prop_assert_eq!(start.rem_euclid(size), 0);
        }

        #[test]
        fn first_open_start_separates_closed_from_open_windows(
            st in -1_000_000i64..1_000_000, start in -1_000_000i64..1_000_000,
            size in 1i64..10_000, grace in 0i64..10_000,
        ) {
            let w = TumblingWindows::new(size, grace);
            prop_assert_eq!(w.is_closed(start, st), start < w.first_open_start(st));
        }
    }
}
