//! Call metadata: the optional block of key/value entries a frame carries when its `flags`
//! bit 0 is set (see docs/protocol.md, "Metadata").
//!
//! The frame parser only checks that the block's lengths stay inside the frame (a block that
//! runs past it makes the whole frame bad); [`Metadata::decode`] then checks the limits, the
//! keys and the text values, and a block that fails those is a bad request for that call only.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// `flags` bit 0: a metadata block follows the names.
pub const FLAG_METADATA: u16 = 0x0001;
/// Entries a block may hold unless configured otherwise.
pub const DEFAULT_MAX_ENTRIES: usize = 64;
/// Bytes a block may take unless configured otherwise (its count included).
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024;

/// The reserved keys and what they carry.
pub mod keys {
    /// W3C Trace Context `traceparent`.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C Trace Context `tracestate`.
    pub const TRACESTATE: &str = "tracestate";
    /// The caller's credentials, e.g. `Bearer <token>`.
    pub const AUTHORIZATION: &str = "authorization";
    /// The routing tag a call asks for.
    pub const TAG: &str = "rpc-tag";
    /// The calling application's name.
    pub const CALLER: &str = "rpc-caller";
}

/// How large a metadata block may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    /// The most entries in one block.
    pub max_entries: usize,
    /// The most bytes one block may take, its 2-byte count included.
    pub max_bytes: usize,
}

impl Default for MetadataLimits {
    fn default() -> Self {
        MetadataLimits {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Why a metadata block or entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// More entries than the limit.
    #[error("metadata has {count} entries; at most {max} are allowed")]
    TooManyEntries {
        /// Entries in the block.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A block larger than the limit.
    #[error("metadata takes {len} bytes; at most {max} are allowed")]
    TooLarge {
        /// The block's size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A key that is empty, too long, or has a character outside `a-z 0-9 - _ .`.
    #[error("metadata key {key:?} is invalid: {reason}")]
    BadKey {
        /// The key, escaped and cut to 64 characters.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value longer than 65,535 bytes.
    #[error("metadata value of {key:?} takes {len} bytes; at most 65535 fit")]
    ValueTooLong {
        /// The key.
        key: String,
        /// The value's length.
        len: usize,
    },
    /// A value that is not UTF-8 under a key that does not end in `-bin`.
    #[error("metadata value of {key:?} is not UTF-8 text (only keys ending in -bin carry bytes)")]
    NotText {
        /// The key.
        key: String,
    },
}

/// An ordered list of metadata entries. Keys are lowercase ASCII letters, digits, `-`, `_`
/// and `.`; values are UTF-8 text, except under keys ending in `-bin`, which carry bytes.
///
/// ```
/// use rpc_core::protocol::Metadata;
///
/// let mut metadata = Metadata::new();
/// metadata.insert("rpc-caller", "billing").unwrap();
/// assert_eq!(metadata.get_str("rpc-caller"), Some("billing"));
/// assert!(metadata.insert("Bad Key", "x").is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(String, Bytes)>,
}

impl fmt::Debug for Metadata {
    /// Values of `authorization` and `*-bin` keys are not shown: they may be secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (key, value) in &self.entries {
            if key == keys::AUTHORIZATION || key.ends_with("-bin") {
                map.entry(key, &"***");
            } else {
                map.entry(key, &String::from_utf8_lossy(value));
            }
        }
        map.finish()
    }
}

impl Metadata {
    /// No entries.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Sets `key` to `value`, replacing an earlier value of the same key.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
    ) -> Result<(), MetadataError> {
        let key = key.into();
        let value = value.into();
        check_entry(&key, &value)?;
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
        Ok(())
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    /// The value of `key` as text, if present and UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Bytes> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(at).1)
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    /// Adds every entry of `other` that this one does not set already.
    pub fn merge_missing(&mut self, other: &Metadata) {
        for (key, value) in &other.entries {
            if self.get(key).is_none() {
                self.entries.push((key.clone(), value.clone()));
            }
        }
    }

    /// The wire block: a 2-byte count, then each entry. Empty metadata gives no block.
    pub fn encode(&self) -> Bytes {
        if self.entries.is_empty() {
            return Bytes::new();
        }
        let len = 2 + self
            .entries
            .iter()
            .map(|(k, v)| 1 + k.len() + 2 + v.len())
            .sum::<usize>();
        let mut block = BytesMut::with_capacity(len);
        // Entries were checked on insert, so every length fits its field.
        block.put_u16(self.entries.len() as u16);
        for (key, value) in &self.entries {
            block.put_u8(key.len() as u8);
            block.put_slice(key.as_bytes());
            block.put_u16(value.len() as u16);
            block.put_slice(value);
        }
        block.freeze()
    }

    /// Decodes a block that the frame parser has already bounded, under `limits`.
    pub fn decode(block: &Bytes, limits: &MetadataLimits) -> Result<Metadata, MetadataError> {
        if block.is_empty() {
            return Ok(Metadata::new());
        }
        if block.len() > limits.max_bytes {
            return Err(MetadataError::TooLarge {
                len: block.len(),
                max: limits.max_bytes,
            });
        }
        let mut buf = block.clone();
        let count = usize::from(buf.get_u16());
        if count > limits.max_entries {
            return Err(MetadataError::TooManyEntries {
                count,
                max: limits.max_entries,
            });
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            // The parser checked every length, so these reads stay inside the block.
            let key_len = usize::from(buf.get_u8());
            let key = buf.split_to(key_len);
            let value_len = usize::from(buf.get_u16());
            let value = buf.split_to(value_len);
            let key = match std::str::from_utf8(&key) {
                Ok(key) => key.to_string(),
                Err(_) => {
                    return Err(MetadataError::BadKey {
                        key: shown(&String::from_utf8_lossy(&key)),
                        reason: "it is not ASCII",
                    })
                }
            };
            check_entry(&key, &value)?;
            entries.push((key, value));
        }
        Ok(Metadata { entries })
    }
}

/// The length of the metadata block at the start of `buf`, checking only that every length
/// in it stays inside `buf`. `None` when it runs past the end.
pub(crate) fn block_len(buf: &[u8]) -> Option<usize> {
    let mut at = 2;
    let count = usize::from(u16::from_be_bytes([*buf.first()?, *buf.get(1)?]));
    for _ in 0..count {
        let key_len = usize::from(*buf.get(at)?);
        at += 1 + key_len;
        let value_len = usize::from(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]));
        at += 2 + value_len;
    }
    (at <= buf.len()).then_some(at)
}

fn check_entry(key: &str, value: &[u8]) -> Result<(), MetadataError> {
    let bad = |reason| MetadataError::BadKey {
        key: shown(key),
        reason,
    };
    if key.is_empty() {
        return Err(bad("it is empty"));
    }
    if key.len() > 255 {
        return Err(bad("it is longer than 255 bytes"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(bad("only lowercase a-z, 0-9, '-', '_' and '.' are allowed"));
    }
    if value.len() > usize::from(u16::MAX) {
        return Err(MetadataError::ValueTooLong {
            key: key.to_string(),
            len: value.len(),
        });
    }
    if !key.ends_with("-bin") && std::str::from_utf8(value).is_err() {
        return Err(MetadataError::NotText {
            key: key.to_string(),
        });
    }
    Ok(())
}

/// A key as an error may show it: escaped and cut short.
fn shown(key: &str) -> String {
    let escaped: String = key.escape_debug().collect();
    escaped.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(entries: &[(&str, &[u8])]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u16(entries.len() as u16);
        for (k, v) in entries {
            b.put_u8(k.len() as u8);
            b.put_slice(k.as_bytes());
            b.put_u16(v.len() as u16);
            b.put_slice(v);
        }
        b.freeze()
    }

    #[test]
    fn round_trips_and_replaces() {
        let mut m = Metadata::new();
        m.insert("rpc-tag", "gray").unwrap();
        m.insert("trace-bin", Bytes::from_static(&[0xff, 0]))
            .unwrap();
        m.insert("rpc-tag", "blue").unwrap();
        let wire = m.encode();
        assert_eq!(block_len(&wire), Some(wire.len()));
        let back = Metadata::decode(&wire, &MetadataLimits::default()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.get_str("rpc-tag"), Some("blue"));
        assert_eq!(back.len(), 2);
    }

    #[test]
    fn limits_keys_and_text_are_checked() {
        let limits = MetadataLimits::default();
        let many: Vec<(String, Vec<u8>)> = (0..65).map(|i| (format!("k{i}"), vec![])).collect();
        let refs: Vec<(&str, &[u8])> = many.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
        assert!(matches!(
            Metadata::decode(&block(&refs), &limits),
            Err(MetadataError::TooManyEntries { count: 65, max: 64 })
        ));
        let big = vec![b'a'; 16 * 1024];
        assert!(matches!(
            Metadata::decode(&block(&[("k", &big)]), &limits),
            Err(MetadataError::TooLarge { .. })
        ));
        assert!(matches!(
            Metadata::decode(&block(&[("Upper", b"x")]), &limits),
            Err(MetadataError::BadKey { .. })
        ));
        assert!(matches!(
            Metadata::decode(&block(&[("", b"x")]), &limits),
            Err(MetadataError::BadKey { .. })
        ));
        assert!(matches!(
            Metadata::decode(&block(&[("text", &[0xff])]), &limits),
            Err(MetadataError::NotText { .. })
        ));
    }

    #[test]
    fn a_block_that_runs_past_its_buffer_has_no_length() {
        let whole = block(&[("key", b"value")]);
        for cut in 0..whole.len() {
            assert_eq!(block_len(&whole[..cut]), None, "cut at {cut}");
        }
        assert_eq!(block_len(&whole), Some(whole.len()));
    }

    #[test]
    fn debug_hides_credentials() {
        let mut m = Metadata::new();
        m.insert("authorization", "Bearer s3cret").unwrap();
        assert!(!format!("{m:?}").contains("s3cret"));
    }
}
