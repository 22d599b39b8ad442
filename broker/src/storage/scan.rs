//! Sequential reading of the batches in a byte range of a segment file.
//!
//! Recovery, index rebuilds, timestamp lookups and compaction all walk batch headers from some
//! position; this reads the file in large chunks with `pread` and hands each whole batch to a
//! callback, so the number of syscalls does not grow with the number of (small) batches.

use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::StorageError;
use super::batch::{BatchHeader, LOG_OVERHEAD, peek_offset_and_length};

/// Bytes read per syscall while scanning.
const CHUNK: usize = 1 << 20;

/// Reads up to `len` bytes at `pos`, stopping early at end of file.
pub(crate) fn read_at_most(
    file: &File,
    path: &Path,
    pos: u64,
    len: usize,
) -> Result<Vec<u8>, StorageError> {
    let mut buf = vec![0u8; len];
    let filled = read_into(file, path, pos, &mut buf)?;
    buf.truncate(filled);
    Ok(buf)
}

/// Fills `buf` from `pos`, stopping early at end of file; returns the bytes read.
pub(crate) fn read_into(
    file: &File,
    path: &Path,
    pos: u64,
    buf: &mut [u8],
) -> Result<usize, StorageError> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], pos + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StorageError::io(path, e)),
        }
    }
    Ok(filled)
}

/// How a scan ended.
#[derive(Debug)]
pub(crate) struct ScanEnd {
    /// File position just after the last batch handed to the callback.
    pub(crate) valid_end: u64,
    /// Why the scan stopped before `end`, when it did because of bad bytes.
    pub(crate) error: Option<StorageError>,
}

/// Hands each batch in `[from, end)` with its file position to `f`, in order, until `f` breaks,
/// the range ends, or a batch is invalid (truncated, malformed, or with a bad CRC when
/// `verify_crc`). Invalid bytes are reported in [`ScanEnd::error`], not as `Err`; `Err` is
/// reserved for I/O failures.
pub(crate) fn scan_batches(
    file: &File,
    path: &Path,
    from: u64,
    end: u64,
    verify_crc: bool,
    mut f: impl FnMut(&BatchHeader<'_>, u64) -> ControlFlow<()>,
) -> Result<ScanEnd, StorageError> {
    let mut pos = from;
    while pos < end {
        let remaining = usize::try_from(end - pos).unwrap_or(usize::MAX);
        // One large read per chunk rather than one per batch: producers often send small batches.
        let mut chunk = read_at_most(file, path, pos, remaining.min(CHUNK))?;
        // A batch larger than the chunk: read exactly that batch.
        if let Some((_, length)) = peek_offset_and_length(&chunk) {
            let total = LOG_OVERHEAD.saturating_add(usize::try_from(length).unwrap_or(0));
            if total > chunk.len() && total <= remaining {
                chunk = read_at_most(file, path, pos, total)?;
            }
        }
        let mut offset_in_chunk = 0usize;
        loop {
            let rest = &chunk[offset_in_chunk..];
            if rest.is_empty() {
                break;
            }
            let batch_pos = pos + offset_in_chunk as u64;
            let position = usize::try_from(batch_pos).unwrap_or(usize::MAX);
            let header = match BatchHeader::parse_at(rest, position) {
                Ok(h) => h,
                Err(StorageError::BatchTruncated { .. }) if offset_in_chunk > 0 => {
                    // The batch continues past this chunk: read the next chunk from it.
                    break;
                }
                Err(e) => {
                    return Ok(ScanEnd {
                        valid_end: batch_pos,
                        error: Some(e),
                    });
                }
            };
            if verify_crc && let Err(e) = header.verify_crc_at(position) {
                return Ok(ScanEnd {
                    valid_end: batch_pos,
                    error: Some(e),
                });
            }
            if f(&header, batch_pos).is_break() {
                return Ok(ScanEnd {
                    valid_end: batch_pos + header.size() as u64,
                    error: None,
                });
            }
            offset_in_chunk += header.size();
        }
        if offset_in_chunk == 0 {
            // Nothing parsed and nothing reported: the file ended under us.
            return Ok(ScanEnd {
                valid_end: pos,
                error: None,
            });
        }
        pos += offset_in_chunk as u64;
    }
    Ok(ScanEnd {
        valid_end: pos,
        error: None,
    })
}
