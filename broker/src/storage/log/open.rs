//! Opening a log: listing segments, recovering the active one, loading checkpoints.
//!
//! Closed segments are trusted: their indexes are loaded and only the bytes after the last index
//! entry are checked (a few KiB), so opening a large log costs little. The active segment is
//! scanned batch by batch (length, magic, CRC, increasing offsets) and a torn or corrupt tail is
//! cut off, unless the previous close left the clean-shutdown marker. If a closed segment turns
//! out to be damaged, it is cut at the damage and every later segment is removed, so the log
//! always holds a prefix of what was appended.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use super::{CLEAN_SHUTDOWN_MARKER, LOG_START_CHECKPOINT, Log, Writer};
use crate::storage::config::LogConfig;
use crate::storage::epoch_cache::EpochCache;
use crate::storage::segment::{BatchMeta, Segment};
use crate::storage::{StorageError, checkpoint};

/// Suffixes of files left behind by an interrupted compaction or checkpoint write.
const LEFTOVER_SUFFIXES: &[&str] = &[".cleaned", ".tmp"];

impl Log {
    /// Opens the log in `dir`, creating the directory and an empty log if needed, or recovering
    /// what is there.
    ///
    /// # Errors
    /// I/O errors, or an unreadable checkpoint.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log, StorageError> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let index_interval = u64::from(config.index_interval_bytes);
        let bases = list_segments(dir)?;

        // The marker vouches only for the close that wrote it: remove it (durably) before anything
        // can be appended, so that a crash from now on is recovered by a scan.
        let marker = dir.join(CLEAN_SHUTDOWN_MARKER);
        let clean = marker.exists();
        if clean {
            fs::remove_file(&marker).map_err(|e| StorageError::io(&marker, e))?;
            checkpoint::sync_dir(dir)?;
        }

        let checkpointed_start = read_log_start(dir)?;
        let mut segments: BTreeMap<i64, Arc<Segment>> = BTreeMap::new();
        let mut active_scan: Vec<BatchMeta> = Vec::new();
        let mut iter = bases.iter().peekable();
        while let Some(&base) = iter.next() {
            let is_last = iter.peek().is_none();
            let opened = Segment::open(dir, base, clean || !is_last, index_interval)?;
            // Segments must not overlap: a segment starting below its predecessor's end means the
            // files do not belong together (e.g. a lost truncation); keep the consistent prefix.
            let prev_next = segments.values().next_back().map(|s| s.next_offset());
            if prev_next.is_some_and(|n| n > base) {
                tracing::warn!(
                    base,
                    "segment overlaps its predecessor; removing it and later segments"
                );
                remove_segment_files(dir, std::iter::once(&base).chain(iter))?;
                opened.segment.delete_files()?;
                break;
            }
            let damaged = opened.truncated_bytes > 0 && !is_last;
            if opened.rebuilt && !is_last {
                // Persist the rebuilt indexes so the next open trusts this closed segment.
                opened.segment.write_indexes(false)?;
            }
            let segment = Arc::new(opened.segment);
            segments.insert(base, segment);
            active_scan = opened.scanned;
            if damaged {
                let rest: Vec<i64> = iter.copied().collect();
                tracing::warn!(
                    base,
                    removed = rest.len(),
                    "closed segment was damaged; removing later segments"
                );
                remove_segment_files(dir, rest.iter())?;
                break;
            }
        }

        // The log start is the checkpointed one (DeleteRecords may have moved it into the middle
        // of a segment) or the first segment's base, whichever is larger: retention deletes a
        // segment before the checkpoint says so, and a crash in between must not resurrect it.
        let mut log_start = checkpointed_start.unwrap_or(0);
        if let Some((&first, _)) = segments.iter().next() {
            log_start = log_start.max(first);
        }
        let mut leo = segments
            .values()
            .next_back()
            .map_or(log_start, |s| s.next_offset());
        if leo < log_start || segments.is_empty() {
            // Everything below the checkpointed start is gone: start empty at the log start.
            for s in segments.values() {
                s.delete_files()?;
            }
            segments.clear();
            active_scan.clear();
            segments.insert(log_start, Arc::new(Segment::create(dir, log_start)?));
            leo = log_start;
        }
        if checkpointed_start != Some(log_start) {
            write_log_start(dir, log_start)?;
        }

        // The epoch checkpoint is written after the append that starts an epoch, so it may miss
        // epochs of the recovered active segment (re-added from the scan) or hold epochs of a
        // truncated tail (dropped).
        let mut epochs = EpochCache::load(dir)?;
        let mut changed = epochs.truncate_from_end(leo);
        changed |= epochs.truncate_from_start(log_start);
        for m in &active_scan {
            changed |= epochs.assign(m.leader_epoch, m.base_offset);
        }
        if changed {
            epochs.flush()?;
        }

        let active = segments
            .values()
            .next_back()
            .cloned()
            .ok_or_else(|| StorageError::io(dir, std::io::Error::other("no active segment")))?;
        tracing::info!(
            dir = %dir.display(),
            segments = segments.len(),
            log_start_offset = log_start,
            log_end_offset = leo,
            clean_shutdown = clean,
            "opened log"
        );
        Ok(Log {
            dir: dir.to_owned(),
            config: RwLock::new(config),
            writer: Mutex::new(Writer {
                active,
                unflushed_messages: 0,
                last_flush: Instant::now(),
            }),
            segments: RwLock::new(segments),
            epochs: Mutex::new(epochs),
            log_start_offset: AtomicI64::new(log_start),
            log_end_offset: AtomicI64::new(leo),
            cleaner: Mutex::new(()),
            truncations: AtomicU64::new(0),
            background: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }
}

/// Base offsets of the `<20 digits>.log` files in `dir`, sorted; removes leftovers of
/// interrupted operations and index files without a log file.
fn list_segments(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    let mut indexes = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if LEFTOVER_SUFFIXES.iter().any(|s| name.ends_with(s)) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
            continue;
        }
        let parsed = name
            .split_once('.')
            .filter(|(stem, _)| stem.len() == 20)
            .and_then(|(stem, ext)| stem.parse::<i64>().ok().map(|b| (b, ext)));
        match parsed {
            Some((base, "log")) => bases.push(base),
            Some((base, "index" | "timeindex")) => indexes.push((base, entry.path())),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in indexes {
        if bases.binary_search(&base).is_err() {
            fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
        }
    }
    Ok(bases)
}

fn remove_segment_files<'a>(
    dir: &Path,
    bases: impl Iterator<Item = &'a i64>,
) -> Result<(), StorageError> {
    for &base in bases {
        let stem = crate::storage::segment::file_stem(base);
        for ext in ["log", "index", "timeindex"] {
            let path = dir.join(format!("{stem}.{ext}"));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&path, e)),
            }
        }
    }
    Ok(())
}

pub(super) fn read_log_start(dir: &Path) -> Result<Option<i64>, StorageError> {
    let path = dir.join(LOG_START_CHECKPOINT);
    let Some(lines) = checkpoint::read(&path)? else {
        return Ok(None);
    };
    match lines.as_slice() {
        [line] => line
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| StorageError::InvalidCheckpoint {
                path,
                reason: format!("bad offset {line:?}"),
            }),
        _ => Err(StorageError::InvalidCheckpoint {
            path,
            reason: format!("expected one entry, found {}", lines.len()),
        }),
    }
}

pub(super) fn write_log_start(dir: &Path, offset: i64) -> Result<(), StorageError> {
    checkpoint::write(&dir.join(LOG_START_CHECKPOINT), &[offset.to_string()])
}
