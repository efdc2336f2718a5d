//! Zipmaps: the packed hashes of RDB type 9 (files from Redis 2.x).
//!
//! ```text
//! zmlen:u8  (len key  len free:u8 value free×padding)*  0xff
//! len = 1 byte if < 254, else 0xfe + u32le
//! ```
//!
//! [`Zipmap::parse`] checks what Redis's `zipmapValidateIntegrity` checks: every length and
//! entry inside the blob (free padding included), at least one pair, `zmlen` equal to the number
//! of pairs unless it is 254 ("count them"), and the end marker as the last byte. Like Redis, a
//! value length byte of 255 is read as the 5-byte form.
//!
//! ```
//! use respsync::rdb::encoding::zipmap::Zipmap;
//!
//! // {"a": "xy"} with one byte of free padding after the value.
//! let blob = [1, 1, b'a', 2, 1, b'x', b'y', 0, 0xff];
//! let zm = Zipmap::parse(&blob).unwrap();
//! assert_eq!(zm.len(), 1);
//! assert_eq!(zm.iter().collect::<Vec<_>>(), [(&b"a"[..], &b"xy"[..])]);
//! ```

use super::{read_array, ContainerError, ContainerErrorKind};

/// A field and its value.
type Pair<'a> = (&'a [u8], &'a [u8]);

/// The end marker (also never a key length).
const END: u8 = 0xff;
/// Length byte announcing a u32 length; as `zmlen`, "unknown count".
const BIGLEN: u8 = 0xfe;

/// A validated zipmap borrowed from its blob.
///
/// ```
/// use respsync::rdb::encoding::{zipmap::Zipmap, ContainerErrorKind};
///
/// // Header says 2 pairs, there is 1.
/// let err = Zipmap::parse(&[2, 1, b'k', 1, 0, b'v', 0xff]).unwrap_err();
/// assert!(matches!(err.kind, ContainerErrorKind::CountMismatch { declared: 2, actual: 1 }));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Zipmap<'a> {
    blob: &'a [u8],
    len: usize,
}

impl<'a> Zipmap<'a> {
    /// Validates `blob` completely; see the [module docs](self) for what is checked.
    pub fn parse(blob: &'a [u8]) -> Result<Self, ContainerError> {
        if blob.len() < 2 {
            return Err(ContainerError::new(
                ContainerErrorKind::BlobTooShort { len: blob.len() },
                0,
            ));
        }
        let last = blob.len() - 1;
        if blob[last] != END {
            return Err(ContainerError::new(
                ContainerErrorKind::MissingTerminator,
                last,
            ));
        }
        let mut iter = Iter {
            blob,
            pos: 1,
            remaining: usize::MAX,
        };
        let mut count = 0usize;
        while iter.step()?.is_some() {
            count += 1;
        }
        if iter.pos != last {
            return Err(ContainerError::new(
                ContainerErrorKind::TrailingBytes,
                iter.pos + 1,
            ));
        }
        if count == 0 {
            return Err(ContainerError::new(ContainerErrorKind::Empty, 0));
        }
        let zmlen = blob[0];
        if zmlen != BIGLEN && usize::from(zmlen) != count {
            return Err(ContainerError::new(
                ContainerErrorKind::CountMismatch {
                    declared: u64::from(zmlen),
                    actual: count as u64,
                },
                0,
            ));
        }
        Ok(Self { blob, len: count })
    }

    /// Number of field/value pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always `false`: an empty zipmap does not parse. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The field/value pairs in order.
    pub fn iter(&self) -> Iter<'a> {
        Iter {
            blob: self.blob,
            pos: 1,
            remaining: self.len,
        }
    }
}

impl<'a> IntoIterator for &Zipmap<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the field/value pairs of a [`Zipmap`].
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    blob: &'a [u8],
    pos: usize,
    remaining: usize,
}

impl<'a> Iter<'a> {
    /// Reads the pair at `pos`, or `None` at the end marker. Nothing may reach the last byte,
    /// which must be the end marker.
    fn step(&mut self) -> Result<Option<Pair<'a>>, ContainerError> {
        let start = self.pos;
        let oob = || ContainerError::new(ContainerErrorKind::EntryOutOfBounds, start);
        let region = &self.blob[..self.blob.len() - 1];
        let Some(&first) = self.blob.get(self.pos) else {
            return Err(oob());
        };
        if first == END {
            return Ok(None);
        }
        let (klen, at) = read_len(region, self.pos).ok_or_else(oob)?;
        let key_end = at.checked_add(klen).ok_or_else(oob)?;
        let key = region.get(at..key_end).ok_or_else(oob)?;
        let (vlen, at) = read_len(region, key_end).ok_or_else(oob)?;
        let free = usize::from(*region.get(at).ok_or_else(oob)?);
        let val_start = at + 1;
        let val_end = val_start.checked_add(vlen).ok_or_else(oob)?;
        let value = region.get(val_start..val_end).ok_or_else(oob)?;
        let next = val_end.checked_add(free).ok_or_else(oob)?;
        if next > region.len() {
            return Err(oob());
        }
        self.pos = next;
        Ok(Some((key, value)))
    }
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        if self.remaining == 0 {
            return None;
        }
        // The blob was validated by `Zipmap::parse`, so stepping cannot fail here; if it
        // somehow did, the iterator just ends.
        let pair = self.step().ok()??;
        self.remaining -= 1;
        Some(pair)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Reads a zipmap length at `pos`: returns it and the offset after it.
fn read_len(region: &[u8], pos: usize) -> Option<(usize, usize)> {
    let first = *region.get(pos)?;
    if first < BIGLEN {
        Some((usize::from(first), pos + 1))
    } else {
        let b: [u8; 4] = read_array(region, pos + 1)?;
        Some((u32::from_le_bytes(b) as usize, pos + 5))
    }
}
