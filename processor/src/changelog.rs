//! The changelog record format.
//!
//! Every store has a compacted topic `<processor>-<store>-changelog` with the input's partition count;
//! partition `p` of it holds the writes of the task for input partition `p`. A commit appends, in
//! order, one record per key written since the previous commit (a `null` value is a delete) and then
//! a commit marker: the reserved key `\0absorbed` with the next input offset the state has absorbed,
//! as 8 big-endian bytes. The marker is what makes restored state exact: a restore applies a group of
//! writes only once it has read the marker that closes it, so a commit torn by a crash is never half
//! applied, and the marker's value says where to resume the input. Compaction keeps the latest value
//! of every key and the latest marker, which is all a restore needs.

/// The key of the commit marker. Store keys may not start with byte 0, so it cannot collide.
pub const MARKER_KEY: &[u8] = b"\0absorbed";

/// The changelog topic of `store` in processor `processor`.
#[must_use]
pub fn changelog_topic(processor: &str, store: &str) -> String {
    format!("{processor}-{store}-changelog")
}

/// The value of a commit marker.
#[must_use]
pub fn marker_value(absorbed: i64) -> [u8; 8] {
    absorbed.to_be_bytes()
}

/// One decoded changelog record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangelogEntry<'a> {
    /// A store write; `None` deletes the key.
    Write {
        /// The store key.
        key: &'a [u8],
        /// The new value.
        value: Option<&'a [u8]>,
    },
    /// The end of one commit's writes.
    Marker {
        /// The next input offset the state has absorbed.
        absorbed: i64,
    },
}

/// Decodes a changelog record's key and value.
///
/// # Errors
/// A record without a key, or a marker whose value is not 8 bytes, with the reason.
pub fn decode<'a>(
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
) -> Result<ChangelogEntry<'a>, String> {
    let key = key.ok_or_else(|| "record has no key".to_owned())?;
    if key == MARKER_KEY {
        let bytes: [u8; 8] = value
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| format!("commit marker value {value:?} is not 8 bytes"))?;
        return Ok(ChangelogEntry::Marker {
            absorbed: i64::from_be_bytes(bytes),
        });
    }
    if key.first() == Some(&0) {
        return Err(format!("unknown reserved key {key:?}"));
    }
    Ok(ChangelogEntry::Write { key, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topic_name_follows_the_convention() {
        assert_eq!(changelog_topic("views", "counts"), "views-counts-changelog");
    }

    #[test]
    fn malformed_records_are_reported() {
        assert!(decode(None, Some(b"v")).is_err());
        assert!(decode(Some(MARKER_KEY), Some(b"short")).is_err());
        assert!(decode(Some(MARKER_KEY), None).is_err());
        assert!(decode(Some(b"\0other"), Some(b"v")).is_err());
    }

    #[test]
    fn a_null_value_is_a_delete() {
        assert_eq!(
            decode(Some(b"k"), None),
            Ok(ChangelogEntry::Write {
                key: b"k",
                value: None
            })
        );
    }

    proptest! {
        #[test]
        fn markers_round_trip(absorbed in any::<i64>()) {
            let v = marker_value(absorbed);
            prop_assert_eq!(decode(Some(MARKER_KEY), Some(&v)), Ok(ChangelogEntry::Marker { absorbed }));
        }
    }
}
