//! The sparse offset index of one segment: `<base>.index`.
//!
//! Entries map a batch's base offset (relative to the segment base, 4 bytes) to the batch's byte
//! position in the segment file (4 bytes), big endian, one entry every `index.interval.bytes`.
//! A lookup gives a position at or before the wanted batch; the reader scans batch headers from
//! there. The whole index lives in memory (it is small: 8 bytes per 4 KiB of log); the file is
//! written when a segment is closed and is only read at startup.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use super::StorageError;

const ENTRY_SIZE: usize = 8;

/// In-memory sparse offset index of one segment.
#[derive(Debug, Clone, Default)]
pub(crate) struct OffsetIndex {
    base_offset: i64,
    /// `(relative offset, position)`, both strictly increasing.
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub(crate) fn new(base_offset: i64) -> Self {
        Self {
            base_offset,
            entries: Vec::new(),
        }
    }

    /// Adds an entry; ignored unless it is past the last one in both offset and position.
    pub(crate) fn append(&mut self, offset: i64, position: u64) {
        let (Ok(rel), Ok(pos)) = (
            u32::try_from(offset - self.base_offset),
            u32::try_from(position),
        ) else {
            return;
        };
        if self.entries.last().is_none_or(|&(r, p)| rel > r && pos > p) {
            self.entries.push((rel, pos));
        }
    }

    /// Position of the last indexed batch whose base offset is at most `offset` and which starts
    /// before `limit` bytes; 0 when there is none.
    pub(crate) fn lookup(&self, offset: i64, limit: u64) -> u64 {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            // Below the segment base (or absurdly far above it): scan from the start.
            return if offset < self.base_offset {
                0
            } else {
                self.last_position_before(limit)
            };
        };
        let idx = self.entries.partition_point(|&(r, _)| r <= rel);
        self.entries[..idx]
            .iter()
            .rev()
            .map(|&(_, p)| u64::from(p))
            .find(|&p| p < limit)
            .unwrap_or(0)
    }

    fn last_position_before(&self, limit: u64) -> u64 {
        self.entries
            .iter()
            .rev()
            .map(|&(_, p)| u64::from(p))
            .find(|&p| p < limit)
            .unwrap_or(0)
    }

    /// Forgets the entry pointing at `position` (found not to point at a sound batch).
    pub(crate) fn remove_position(&mut self, position: u64) {
        self.entries.retain(|&(_, p)| u64::from(p) != position);
    }

    /// The last entry as `(absolute offset, position)`.
    pub(crate) fn last_entry(&self) -> Option<(i64, u64)> {
        self.entries
            .last()
            .map(|&(r, p)| (self.base_offset + i64::from(r), u64::from(p)))
    }

    /// Drops entries at or after byte `position` (truncation of the segment file).
    pub(crate) fn truncate_to_position(&mut self, position: u64) {
        let idx = self
            .entries
            .partition_point(|&(_, p)| u64::from(p) < position);
        self.entries.truncate(idx);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Loads the index file; `Ok(None)` when missing or not a valid index (wrong size,
    /// entries not increasing), so that the caller rebuilds it.
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
            let rel = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let pos = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            if index
                .entries
                .last()
                .is_some_and(|&(r, p)| rel <= r || pos <= p)
            {
                return Ok(None);
            }
            index.entries.push((rel, pos));
        }
        Ok(Some(index))
    }

    /// Serialises the index in its file format.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_SIZE);
        for &(r, p) in &self.entries {
            out.extend_from_slice(&r.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_returns_the_last_entry_at_or_below_the_offset() {
        let mut index = OffsetIndex::new(100);
        index.append(110, 4096);
        index.append(120, 8192);
        index.append(130, 12288);
        assert_eq!(index.lookup(100, u64::MAX), 0);
        assert_eq!(index.lookup(109, u64::MAX), 0);
        assert_eq!(index.lookup(110, u64::MAX), 4096);
        assert_eq!(index.lookup(125, u64::MAX), 8192);
        assert_eq!(index.lookup(1_000, u64::MAX), 12288);
        assert_eq!(index.lookup(50, u64::MAX), 0);
    }

    #[test]
    fn lookup_ignores_entries_beyond_the_visible_size() {
        let mut index = OffsetIndex::new(0);
        index.append(10, 100);
        index.append(20, 200);
        assert_eq!(index.lookup(25, 200), 100);
        assert_eq!(index.lookup(25, 201), 200);
    }

    #[test]
    fn non_increasing_entries_are_ignored() {
        let mut index = OffsetIndex::new(0);
        index.append(10, 100);
        index.append(10, 200);
        index.append(20, 50);
        index.append(-5, 300);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn truncation_drops_entries_at_and_after_the_position() {
        let mut index = OffsetIndex::new(0);
        index.append(10, 100);
        index.append(20, 200);
        index.truncate_to_position(200);
        assert_eq!(index.last_entry(), Some((10, 100)));
    }

    #[test]
    fn file_round_trip_and_rejection_of_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::new(7);
        index.append(17, 100);
        index.append(27, 200);
        fs::write(&path, index.to_bytes()).unwrap();
        let loaded = OffsetIndex::load(&path, 7).unwrap().unwrap();
        assert_eq!(loaded.last_entry(), Some((27, 200)));

        fs::write(&path, [0u8; 7]).unwrap();
        assert!(OffsetIndex::load(&path, 7).unwrap().is_none());
        fs::write(&path, [0u8; 16]).unwrap();
        assert!(OffsetIndex::load(&path, 7).unwrap().is_none());
        assert!(
            OffsetIndex::load(&dir.path().join("missing"), 7)
                .unwrap()
                .is_none()
        );
    }
}
