//! The sparse time index of one segment: `<base>.timeindex`.
//!
//! Entries are `(timestamp i64, relative offset u32)`, big endian: the largest batch timestamp
//! seen so far in the segment and the base offset of the batch that first reached it. Entries are
//! added with the offset index entries (every `index.interval.bytes`) when the timestamp grew, and
//! once more when the segment is closed, so the last entry is the segment's largest timestamp:
//! retention by time reads it at startup without scanning the segment.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::StorageError;

const ENTRY_SIZE: usize = 12;

/// In-memory sparse time index of one segment.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimeIndex {
    base_offset: i64,
    /// `(timestamp, relative offset)`, both strictly increasing.
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub(crate) fn new(base_offset: i64) -> Self {
        Self {
            base_offset,
            entries: Vec::new(),
        }
    }

    /// Adds `(timestamp, offset)` if the timestamp is larger than the last entry's (and the
    /// offset not smaller).
    pub(crate) fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return;
        };
        match self.entries.last() {
            Some(&(ts, r)) if timestamp <= ts || rel < r => {}
            _ => self.entries.push((timestamp, rel)),
        }
    }

    /// The offset from which to scan for the first batch whose max timestamp is at least
    /// `timestamp`: the offset of the last entry with a smaller timestamp, or the segment base.
    /// Every batch before that offset has a smaller max timestamp.
    pub(crate) fn lookup(&self, timestamp: i64) -> i64 {
        let idx = self.entries.partition_point(|&(ts, _)| ts < timestamp);
        match idx.checked_sub(1).and_then(|i| self.entries.get(i)) {
            Some(&(_, rel)) => self.base_offset + i64::from(rel),
            None => self.base_offset,
        }
    }

    /// The last entry as `(timestamp, absolute offset)`.
    pub(crate) fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|&(ts, r)| (ts, self.base_offset + i64::from(r)))
    }

    /// Drops entries for offsets at or after `offset` (truncation).
    pub(crate) fn truncate_to_offset(&mut self, offset: i64) {
        let idx = self
            .entries
            .partition_point(|&(_, r)| self.base_offset + i64::from(r) < offset);
        self.entries.truncate(idx);
    }

    /// Loads the index file; `Ok(None)` when missing or invalid, so that the caller rebuilds it.
    pub(crate) fn load(path: &Path, base_offset: i64) -> Result<Option<Self>, StorageError> {
        let data = match fs::read(path) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io(path, e)),
        };
        if data.len() % ENTRY_SIZE != 0 {
            return Ok(None);
        }
        let mut index = Self::new(base_offset);
        for chunk in data.chunks_exact(ENTRY_SIZE) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if index
                .entries
                .last()
                .is_some_and(|&(t, r)| ts <= t || rel < r)
            {
                return Ok(None);
            }
            index.entries.push((ts, rel));
        }
        Ok(Some(index))
    }

    /// Serialises the index in its file format.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_SIZE);
        for &(ts, r) in &self.entries {
            out.extend_from_slice(&ts.to_be_bytes());
            out.extend_from_slice(&r.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_starts_at_the_last_entry_with_a_smaller_timestamp() {
        let mut index = TimeIndex::new(100);
        index.maybe_append(1_000, 100);
        index.maybe_append(2_000, 150);
        index.maybe_append(1_500, 160);
        index.maybe_append(3_000, 200);
        assert_eq!(index.lookup(500), 100);
        assert_eq!(index.lookup(1_000), 100);
        assert_eq!(index.lookup(1_001), 100);
        assert_eq!(index.lookup(2_500), 150);
        assert_eq!(index.lookup(9_999), 200);
        assert_eq!(index.last_entry(), Some((3_000, 200)));
    }

    #[test]
    fn truncation_and_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut index = TimeIndex::new(0);
        index.maybe_append(10, 0);
        index.maybe_append(20, 5);
        index.maybe_append(30, 9);
        index.truncate_to_offset(9);
        assert_eq!(index.last_entry(), Some((20, 5)));
        fs::write(&path, index.to_bytes()).unwrap();
        let loaded = TimeIndex::load(&path, 0).unwrap().unwrap();
        assert_eq!(loaded.last_entry(), Some((20, 5)));
        fs::write(&path, [1u8; 13]).unwrap();
        assert!(TimeIndex::load(&path, 0).unwrap().is_none());
    }
}
