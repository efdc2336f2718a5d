//! Intsets: the sorted integer arrays of RDB type 11 (small sets of integers).
//!
//! ```text
//! encoding:u32le (element width: 2, 4 or 8)  length:u32le  length × intN le
//! ```
//!
//! [`Intset::parse`] checks what Redis's `intsetValidateIntegrity` checks in deep mode: a valid
//! width, a blob of exactly `8 + width × length` bytes, at least one element, and elements in
//! strictly ascending order (so no duplicates).
//!
//! ```
//! use respsync::rdb::encoding::intset::{Intset, IntsetBuilder};
//!
//! let blob = [2, 0, 0, 0, 3, 0, 0, 0, 0xfe, 0xff, 0x01, 0x00, 0x00, 0x01];
//! let set = Intset::parse(&blob).unwrap();
//! assert_eq!(set.width(), 2);
//! assert_eq!(set.iter().collect::<Vec<_>>(), [-2, 1, 256]);
//!
//! let mut b = IntsetBuilder::new();
//! for v in [256, -2, 1, 1] {
//!     b.push(v);
//! }
//! assert_eq!(b.finish(), blob);
//! ```

use super::{ContainerError, ContainerErrorKind};

/// Size of the fixed header.
const HEADER: usize = 8;

/// A validated intset borrowed from its blob.
///
/// ```
/// use respsync::rdb::encoding::{intset::Intset, ContainerErrorKind};
///
/// // Two 16-bit elements out of order.
/// let blob = [2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 4, 0];
/// let err = Intset::parse(&blob).unwrap_err();
/// assert_eq!((err.offset, err.kind), (10, ContainerErrorKind::IntsetUnsorted));
/// ```
#[derive(Clone, Copy)]
pub struct Intset<'a> {
    data: &'a [u8],
    width: usize,
}

impl<'a> Intset<'a> {
    /// Validates `blob` completely; see the [module docs](self) for what is checked.
    pub fn parse(blob: &'a [u8]) -> Result<Self, ContainerError> {
        if blob.len() < HEADER {
            return Err(ContainerError::new(
                ContainerErrorKind::BlobTooShort { len: blob.len() },
                0,
            ));
        }
        let encoding = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]);
        let width = match encoding {
            2 | 4 | 8 => encoding as usize,
            _ => {
                return Err(ContainerError::new(
                    ContainerErrorKind::InvalidIntsetEncoding(encoding),
                    0,
                ))
            }
        };
        let length = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]);
        let expected = u64::from(length) * width as u64 + HEADER as u64;
        if expected != blob.len() as u64 {
            return Err(ContainerError::new(
                ContainerErrorKind::TotalBytesMismatch {
                    declared: expected,
                    actual: blob.len(),
                },
                4,
            ));
        }
        if length == 0 {
            return Err(ContainerError::new(ContainerErrorKind::Empty, 4));
        }
        let set = Self {
            data: &blob[HEADER..],
            width,
        };
        let mut prev = None;
        for (i, v) in set.iter().enumerate() {
            if prev.is_some_and(|p| v <= p) {
                return Err(ContainerError::new(
                    ContainerErrorKind::IntsetUnsorted,
                    HEADER + i * width,
                ));
            }
            prev = Some(v);
        }
        Ok(set)
    }

    /// Number of elements (at least 1).
    pub fn len(&self) -> usize {
        self.data.len() / self.width
    }

    /// Always `false`: an empty intset does not parse. Present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Width of each element in bytes: 2, 4 or 8 (Redis's `INTSET_ENC_INT16/32/64`).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The elements in ascending order.
    pub fn iter(&self) -> Iter<'a> {
        Iter {
            chunks: self.data.chunks_exact(self.width),
        }
    }
}

impl std::fmt::Debug for Intset<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intset")
            .field("len", &self.len())
            .field("width", &self.width)
            .finish()
    }
}

impl<'a> IntoIterator for &Intset<'a> {
    type Item = i64;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the elements of an [`Intset`].
#[derive(Clone)]
pub struct Iter<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for Iter<'_> {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        let c = self.chunks.next()?;
        Some(match *c {
            [a, b] => i64::from(i16::from_le_bytes([a, b])),
            [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
            // Chunks have the validated width 2, 4 or 8.
            _ => return None,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl std::fmt::Debug for Iter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.chunks.len())
            .finish()
    }
}

/// Builds an intset exactly as Redis's `intsetAdd` leaves it: sorted, without duplicates, every
/// element in the smallest width that holds all of them.
///
/// Values may be pushed in any order; duplicates are dropped. Redis never writes an empty
/// intset (and [`Intset::parse`] rejects one), so push at least one value.
///
/// ```
/// use respsync::rdb::encoding::intset::{Intset, IntsetBuilder};
///
/// let mut b = IntsetBuilder::new();
/// b.push(70_000);
/// b.push(3);
/// let blob = b.finish();
/// let set = Intset::parse(&blob).unwrap();
/// assert_eq!(set.width(), 4);
/// assert_eq!(set.iter().collect::<Vec<_>>(), [3, 70_000]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct IntsetBuilder {
    values: Vec<i64>,
}

impl IntsetBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a value.
    pub fn push(&mut self, v: i64) {
        self.values.push(v);
    }

    /// Number of values pushed so far, duplicates included.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The finished intset blob.
    pub fn finish(mut self) -> Vec<u8> {
        self.values.sort_unstable();
        self.values.dedup();
        let width = width_for(&self.values);
        let mut out = Vec::with_capacity(HEADER + self.values.len() * width);
        out.extend_from_slice(&(width as u32).to_le_bytes());
        out.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for v in self.values {
            out.extend_from_slice(&v.to_le_bytes()[..width]);
        }
        out
    }
}

/// The smallest intset width (2, 4 or 8 bytes) that holds every value.
fn width_for(values: &[i64]) -> usize {
    let fits = |lo: i64, hi: i64| values.iter().all(|v| (lo..=hi).contains(v));
    if fits(i16::MIN.into(), i16::MAX.into()) {
        2
    } else if fits(i32::MIN.into(), i32::MAX.into()) {
        4
    } else {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blob(width: u32, values: &[i64]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&width.to_le_bytes());
        b.extend_from_slice(&(values.len() as u32).to_le_bytes());
        for v in values {
            b.extend_from_slice(&v.to_le_bytes()[..width as usize]);
        }
        b
    }

    #[test]
    fn widths() {
        for (width, values) in [
            (2, &[i64::from(i16::MIN), 0, i64::from(i16::MAX)][..]),
            (4, &[i64::from(i32::MIN), -1, i64::from(i32::MAX)]),
            (8, &[i64::MIN, 0, i64::MAX]),
        ] {
            let b = blob(width, values);
            let set = Intset::parse(&b).unwrap();
            assert_eq!(set.width(), width as usize);
            assert_eq!(set.len(), 3);
            assert_eq!(set.iter().collect::<Vec<_>>(), values);
            let mut builder = IntsetBuilder::new();
            values.iter().rev().for_each(|&v| builder.push(v));
            assert_eq!(builder.finish(), b);
        }
    }

    #[test]
    fn corrupt_intsets() {
        let err = |b: &[u8]| Intset::parse(b).unwrap_err();
        assert_eq!(
            err(&[2, 0, 0, 0, 1, 0, 0]),
            ContainerError::new(ContainerErrorKind::BlobTooShort { len: 7 }, 0)
        );
        assert_eq!(
            err(&blob(3, &[1])),
            ContainerError::new(ContainerErrorKind::InvalidIntsetEncoding(3), 0)
        );
        assert_eq!(
            err(&blob(2, &[])),
            ContainerError::new(ContainerErrorKind::Empty, 4)
        );
        let mut b = blob(4, &[1, 2]);
        b.push(0);
        assert_eq!(
            err(&b),
            ContainerError::new(
                ContainerErrorKind::TotalBytesMismatch {
                    declared: 16,
                    actual: 17
                },
                4
            )
        );
        // Huge declared length: no overflow, no allocation.
        let mut b = blob(8, &[1]);
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            err(&b).kind,
            ContainerErrorKind::TotalBytesMismatch { .. }
        ));
        assert_eq!(
            err(&blob(2, &[1, 1])),
            ContainerError::new(ContainerErrorKind::IntsetUnsorted, 10)
        );
        assert_eq!(
            err(&blob(8, &[1, 5, 3])),
            ContainerError::new(ContainerErrorKind::IntsetUnsorted, 24)
        );
    }

    proptest! {
        #[test]
        fn builder_roundtrip(values in proptest::collection::vec(any::<i64>(), 1..50), small in any::<bool>()) {
            let values: Vec<i64> = if small { values.iter().map(|v| v % 40_000).collect() } else { values };
            let mut b = IntsetBuilder::new();
            values.iter().for_each(|&v| b.push(v));
            let blob = b.finish();
            let set = Intset::parse(&blob).unwrap();
            let mut want = values.clone();
            want.sort_unstable();
            want.dedup();
            prop_assert_eq!(set.iter().collect::<Vec<_>>(), want.clone());
            prop_assert_eq!(set.len(), want.len());
            prop_assert_eq!(set.width(), width_for(&want));
            // The width is the smallest that fits.
            let fits16 = want.iter().all(|&v| i16::try_from(v).is_ok());
            let fits32 = want.iter().all(|&v| i32::try_from(v).is_ok());
            prop_assert_eq!(set.width(), if fits16 { 2 } else if fits32 { 4 } else { 8 });
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut b in proptest::collection::vec(any::<u8>(), 0..100), w in prop::sample::select(vec![2u32, 4, 8])) {
            if b.len() >= 8 {
                b[0..4].copy_from_slice(&w.to_le_bytes());
                let n = ((b.len() - 8) / w as usize) as u32;
                b[4..8].copy_from_slice(&n.to_le_bytes());
                b.truncate(8 + n as usize * w as usize);
            }
            if let Ok(set) = Intset::parse(&b) {
                let v: Vec<_> = set.iter().collect();
                prop_assert!(v.windows(2).all(|w| w[0] < w[1]));
                prop_assert_eq!(v.len(), set.len());
            }
        }
    }
}
