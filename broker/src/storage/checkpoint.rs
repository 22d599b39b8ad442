//! Small checkpoint files written atomically: write a temporary file, fsync it, rename it over
//! the old one, fsync the directory. A crash leaves either the old or the new content.
//!
//! Format (as Kafka's checkpoint files): a version line `0`, a count line, then one entry per line.

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::Path;

use super::StorageError;

const VERSION: &str = "0";

/// Atomically replaces `path` with `lines` under the checkpoint header.
pub(crate) fn write(path: &Path, lines: &[String]) -> Result<(), StorageError> {
    let mut content = format!("{VERSION}\n{}\n", lines.len());
    for line in lines {
        content.push_str(line);
        content.push('\n');
    }
    // `.tmp` files are removed when a log opens, so a crash mid-write leaves no clutter.
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
    file.write_all(content.as_bytes())
        .map_err(|e| StorageError::io(&tmp, e))?;
    file.sync_all().map_err(|e| StorageError::io(&tmp, e))?;
    // The rename is the commit point; the directory fsync makes the rename itself durable.
    fs::rename(&tmp, path).map_err(|e| StorageError::io(path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Reads the entry lines of a checkpoint; `Ok(None)` when the file does not exist.
pub(crate) fn read(path: &Path) -> Result<Option<Vec<String>>, StorageError> {
    let content = match fs::read_to_string(path) {
        Ok(c) => c,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(path, e)),
    };
    let invalid = |reason: String| StorageError::InvalidCheckpoint {
        path: path.to_owned(),
        reason,
    };
    let mut lines = content.lines();
    match lines.next() {
        Some(VERSION) => {}
        other => return Err(invalid(format!("unsupported version {other:?}"))),
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| invalid("missing entry count".to_owned()))?;
    let entries: Vec<String> = lines.map(str::to_owned).collect();
    if entries.len() != count {
        return Err(invalid(format!(
            "expected {count} entries, found {}",
            entries.len()
        )));
    }
    Ok(Some(entries))
}

/// fsyncs a directory so that renames and creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        assert!(read(&path).unwrap().is_none());
        write(&path, &["42".to_owned()]).unwrap();
        assert_eq!(read(&path).unwrap().unwrap(), vec!["42".to_owned()]);
        write(&path, &[]).unwrap();
        assert!(read(&path).unwrap().unwrap().is_empty());
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn a_garbled_checkpoint_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        fs::write(&path, "0\n3\n1\n").unwrap();
        let err = read(&path).unwrap_err();
        assert!(err.to_string().contains("expected 3 entries"), "{err}");
    }
}
