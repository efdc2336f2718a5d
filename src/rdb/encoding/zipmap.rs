//! Zipmaps: the packed hashes of RDB type 9 (files from Redis 2.x).
//!
//! ```text
//! zmlen:u8  (len key  len free:u8 value free×padding)*  0xff
//! len = 1 byte if < 254, else 0xfe + u32le
//! ```
//!
//! [`Zipmap::parse`] checks what Redis's `zipmapValidateIntegrity` checks: every length and
//! entry inside the blob (free padding included), at least one pair, `zmlen` equal to the number
//! of pairs unless it is 254 or 255 ("count unknown, walk the entries"), and the end marker as
//! the last byte. Like Redis, a value length byte of 255 is read as the 5-byte form.
//!
//! A `zmlen` of 255 is accepted like 254: Redis 2.x only ever wrote counts below 254 or 254
//! itself, but some files in the wild (and other parsers) use 255 for a map whose count does
//! not fit; Redis 7's stricter check is not followed there.
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
#[derive(Clone, Copy)]
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
        if zmlen < BIGLEN && usize::from(zmlen) != count {
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

impl std::fmt::Debug for Zipmap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zipmap")
            .field("len", &self.len)
            .field("bytes", &self.blob.len())
            .finish()
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
#[derive(Clone)]
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

impl std::fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("pos", &self.pos)
            .field("remaining", &self.remaining)
            .finish()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encodes a zipmap the way Redis 2.x did, with `free` padding bytes after each value.
    fn encode(pairs: &[(Vec<u8>, Vec<u8>, u8)], zmlen: Option<u8>) -> Vec<u8> {
        let len = |n: usize, out: &mut Vec<u8>| {
            if n < 254 {
                out.push(n as u8);
            } else {
                out.push(BIGLEN);
                out.extend_from_slice(&(n as u32).to_le_bytes());
            }
        };
        let mut out = vec![zmlen.unwrap_or(pairs.len().min(254) as u8)];
        for (k, v, free) in pairs {
            len(k.len(), &mut out);
            out.extend_from_slice(k);
            len(v.len(), &mut out);
            out.push(*free);
            out.extend_from_slice(v);
            out.extend(std::iter::repeat_n(0xaa, usize::from(*free)));
        }
        out.push(END);
        out
    }

    #[test]
    fn big_lengths_and_padding() {
        let pairs = vec![
            (b"k".to_vec(), vec![b'v'; 300], 3),
            (vec![b'k'; 254], b"".to_vec(), 0),
            (b"".to_vec(), b"x".to_vec(), 255),
        ];
        let blob = encode(&pairs, None);
        let zm = Zipmap::parse(&blob).unwrap();
        assert_eq!(zm.len(), 3);
        let got: Vec<_> = zm.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
        let want: Vec<_> = pairs
            .iter()
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn counts() {
        let pairs = vec![(b"a".to_vec(), b"1".to_vec(), 0); 3];
        assert_eq!(Zipmap::parse(&encode(&pairs, Some(254))).unwrap().len(), 3);
        // 255 also means "count unknown": the entries are walked.
        let blob = encode(&pairs, Some(255));
        let zm = Zipmap::parse(&blob).unwrap();
        assert_eq!(zm.len(), 3);
        assert_eq!(zm.iter().count(), 3);
        let err = Zipmap::parse(&encode(&pairs, Some(2))).unwrap_err();
        assert_eq!(
            err,
            ContainerError::new(
                ContainerErrorKind::CountMismatch {
                    declared: 2,
                    actual: 3
                },
                0
            )
        );
        assert_eq!(
            Zipmap::parse(&[0, END]).unwrap_err(),
            ContainerError::new(ContainerErrorKind::Empty, 0)
        );
    }

    #[test]
    fn corrupt_zipmaps() {
        let err = |b: &[u8]| Zipmap::parse(b).unwrap_err();
        assert_eq!(
            err(&[END]),
            ContainerError::new(ContainerErrorKind::BlobTooShort { len: 1 }, 0)
        );
        assert_eq!(
            err(&[1, 1, b'a', 1, 0, b'b']),
            ContainerError::new(ContainerErrorKind::MissingTerminator, 5)
        );
        // Key, value and padding running into the end marker.
        for blob in [
            &[1, 2, b'a', END][..],
            &[1, 1, b'a', 2, 0, b'b', END],
            &[1, 1, b'a', 1, 1, b'b', END],
            &[1, 1, b'a', 1, END],
            &[1, 0xfe, 1, 0, END],
            &[1, 1, b'a', 0xfe, 0xff, 0xff, 0xff, 0xff, 0, END],
        ] {
            assert_eq!(
                err(blob),
                ContainerError::new(ContainerErrorKind::EntryOutOfBounds, 1),
                "{blob:x?}"
            );
        }
        assert_eq!(
            err(&[1, 1, b'a', 1, 0, b'b', END, 0, END]),
            ContainerError::new(ContainerErrorKind::TrailingBytes, 7)
        );
    }

    proptest! {
        #[test]
        fn roundtrip(pairs in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..300), proptest::collection::vec(any::<u8>(), 0..300), any::<u8>()),
            1..8,
        )) {
            let blob = encode(&pairs, None);
            let zm = Zipmap::parse(&blob).unwrap();
            let got: Vec<_> = zm.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            let want: Vec<_> = pairs.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut blob in proptest::collection::vec(any::<u8>(), 0..100), fix in any::<bool>()) {
            if fix && !blob.is_empty() {
                *blob.last_mut().unwrap() = END;
            }
            if let Ok(zm) = Zipmap::parse(&blob) {
                prop_assert_eq!(zm.iter().count(), zm.len());
            }
        }
    }
}
