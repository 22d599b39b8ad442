//! `pageview-count`: page views → counts per page per tumbling window, emitted as upserts.
//!
//! Store `counts` holds, per open window, `w | start | page → count` (start as an order-preserving
//! 8-byte integer, so closed windows are one range scan), and `t → stream time`, the largest event
//! time seen: the stream time is state too, or a replay would judge lateness differently. Each
//! `punctuate` emits the windows changed since the previous one to the output topic, keyed
//! `page@start`, then deletes closed windows from the store (their last upsert is final).

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::TaskError;
use crate::task::{Job, Record, Task, TaskContext};
use crate::window::TumblingWindows;

/// The store of this job.
pub const STORE: &str = "counts";
const STREAM_TIME_KEY: &[u8] = b"t";
const WINDOW_PREFIX: u8 = b'w';

/// A page-view event (the input). Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageView<'a> {
    /// The page, e.g. `/jobs/123`.
    #[serde(borrow)]
    pub page: Cow<'a, str>,
    /// Who viewed it (not used for counting).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Cow<'a, str>>,
    /// Event time in milliseconds since the epoch; the record timestamp when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// A window count (the output value), keyed `page@window_start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageViewCount {
    /// The page.
    pub page: String,
    /// Window start, milliseconds since the epoch (inclusive).
    pub window_start: i64,
    /// Window end, milliseconds since the epoch (exclusive).
    pub window_end: i64,
    /// Views of the page in the window so far.
    pub count: u64,
}

/// The output key of a window count.
#[must_use]
pub fn output_key(page: &str, window_start: i64) -> String {
    format!("{page}@{window_start}")
}

/// The job: reads `input`, writes counts to `output`.
#[derive(Debug, Clone)]
pub struct PageViewCountJob {
    input: String,
    output: String,
    windows: TumblingWindows,
}

impl PageViewCountJob {
    /// A job over `input` and `output` with windows of `window_ms` and `grace_ms` of grace.
    #[must_use]
    pub fn new(input: &str, output: &str, window_ms: i64, grace_ms: i64) -> Self {
        Self {
            input: input.to_owned(),
            output: output.to_owned(),
            windows: TumblingWindows::new(window_ms, grace_ms),
        }
    }
}

impl Job for PageViewCountJob {
    fn input(&self) -> &str {
        &self.input
    }
    fn outputs(&self) -> Vec<String> {
        vec![self.output.clone()]
    }
    fn stores(&self) -> Vec<String> {
        vec![STORE.to_owned()]
    }
    fn create_task(&self, _partition: i32) -> Box<dyn Task> {
        Box::new(PageViewCountTask {
            output: self.output.clone(),
            windows: self.windows,
            stream_time: None,
            changed: BTreeSet::new(),
        })
    }
}

struct PageViewCountTask {
    output: String,
    windows: TumblingWindows,
    /// Cached copy of the stored stream time (`None`: not read from the store yet).
    stream_time: Option<Option<i64>>,
    /// Windows changed since the last punctuate: (start, page).
    changed: BTreeSet<(i64, String)>,
}

/// Order-preserving encoding of an i64 (flip the sign bit).
fn ordered(v: i64) -> [u8; 8] {
    (v.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

fn window_key(start: i64, page: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + page.len());
    key.push(WINDOW_PREFIX);
    key.extend_from_slice(&ordered(start));
    key.extend_from_slice(page.as_bytes());
    key
}

fn read_u64(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

impl PageViewCountTask {
    fn stream_time(&mut self, ctx: &mut TaskContext<'_>) -> Result<Option<i64>, TaskError> {
        if let Some(st) = self.stream_time {
            return Ok(st);
        }
        let st = ctx
            .store(STORE)?
            .get(STREAM_TIME_KEY)?
            .and_then(|b| b.try_into().ok())
            .map(i64::from_be_bytes);
        self.stream_time = Some(st);
        Ok(st)
    }
}

impl Task for PageViewCountTask {
    fn process(&mut self, record: &Record<'_>, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        let Some(view) = record
            .value
            .and_then(|v| serde_json::from_slice::<PageView<'_>>(v).ok())
        else {
            ctx.skip_record();
            return Ok(());
        };
        let Some(ts) = view.timestamp.or(record.timestamp) else {
            ctx.skip_record();
            return Ok(());
        };
        let previous = self.stream_time(ctx)?;
        let stream_time = previous.map_or(ts, |st| st.max(ts));
        let start = self.windows.window_start(ts);
        if self.windows.is_closed(start, stream_time) {
            ctx.skip_record();
            return Ok(());
        }
        let store = ctx.store(STORE)?;
        if previous != Some(stream_time) {
            store.put(STREAM_TIME_KEY, &stream_time.to_be_bytes())?;
            self.stream_time = Some(Some(stream_time));
        }
        let key = window_key(start, &view.page);
        let count = read_u64(store.get(&key)?) + 1;
        store.put(&key, &count.to_be_bytes())?;
        self.changed.insert((start, view.page.into_owned()));
        Ok(())
    }

    fn punctuate(&mut self, ctx: &mut TaskContext<'_>) -> Result<(), TaskError> {
        let changed = std::mem::take(&mut self.changed);
        for (start, page) in changed {
            let count = read_u64(ctx.store(STORE)?.get(&window_key(start, &page))?);
            let value = PageViewCount {
                window_start: start,
                window_end: self.windows.window_end(start),
                count,
                page,
            };
            let json = serde_json::to_vec(&value).map_err(|e| TaskError::Other(e.to_string()))?;
            ctx.send(
                &self.output,
                output_key(&value.page, start).into_bytes(),
                Some(json),
                Some(start),
            );
        }
        // Expire closed windows: their last upsert above is final.
        if let Some(stream_time) = self.stream_time(ctx)? {
            let first_open = self.windows.first_open_start(stream_time);
            let store = ctx.store(STORE)?;
            let lo = window_key(i64::MIN, "");
            let hi = window_key(first_open, "");
            for (key, _) in store.range(&lo, &hi)? {
                store.delete(&key)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
