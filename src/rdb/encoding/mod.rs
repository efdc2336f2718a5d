//! Low-level encodings embedded in RDB values.
//!
//! Every container here is a single RDB string read whole (its length is bounded by the RDB
//! parser's limits before it is read). Decoders take the complete blob, validate all of it
//! (header against blob size, every entry's encoding and bounds, back-links, counts, the end
//! marker) and only then hand out an iterator, so a corrupt container is a [`ContainerError`]
//! carrying the byte offset inside the blob, never a panic or an out-of-bounds read.
//!
//! | Module | Format | RDB types |
//! |---|---|---|
//! | [`ziplist`] | ziplist | 10, 12, 13, quicklist (14) nodes |
//! | [`listpack`] | listpack | 16, 17, 20, 25, stream nodes, quicklist 2 (18) nodes |
//! | [`intset`] | intset | 11 |
//! | [`zipmap`] | zipmap | 9 |
//! | [`lzf`] | LZF (liblzf, no header) | compressed strings (`0xC3`) |
//! | [`crc64`] | CRC-64/Jones | file and DUMP payload checksum |
//!
//! The builders ([`ziplist::ZiplistBuilder`], [`listpack::ListpackBuilder`],
//! [`intset::IntsetBuilder`]) produce exactly the bytes Redis 7 writes for the same elements.

use std::borrow::Cow;
use std::fmt;

pub mod crc64;
pub mod intset;
pub mod listpack;
pub mod lzf;
pub mod ziplist;
pub mod zipmap;

/// A corrupt container or compressed string: what was wrong and where.
///
/// `offset` is the byte offset inside the blob (for LZF: inside the compressed input) where the
/// problem was found.
///
/// ```
/// use respsync::rdb::encoding::{ziplist::Ziplist, ContainerErrorKind};
///
/// // A ziplist whose header claims 16 bytes but the blob has 11.
/// let blob = [0x10, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0xff];
/// let err = Ziplist::parse(&blob).unwrap_err();
/// assert_eq!(err.offset, 0);
/// assert!(matches!(err.kind, ContainerErrorKind::TotalBytesMismatch { declared: 16, actual: 11 }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at offset {offset}")]
#[non_exhaustive]
pub struct ContainerError {
    /// Byte offset inside the blob where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub kind: ContainerErrorKind,
}

impl ContainerError {
    /// Builds an error of `kind` found at `offset`.
    pub fn new(kind: ContainerErrorKind, offset: usize) -> Self {
        Self { offset, kind }
    }
}

/// What was wrong with a container; see [`ContainerError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContainerErrorKind {
    /// Back-link mismatch: a listpack backlen does not equal the entry's encoded size.
    #[error("listpack backlen {declared} does not match entry size {actual}")]
    BacklenMismatch {
        /// The value stored in the backlen.
        declared: u64,
        /// The real size of the entry (encoding + data).
        actual: usize,
    },
    /// The blob is shorter than the container's fixed header plus terminator.
    #[error("container too short ({len} bytes)")]
    BlobTooShort {
        /// Size of the blob.
        len: usize,
    },
    /// The element count in the header does not equal the number of entries found.
    #[error("header count {declared} does not match {actual} entries")]
    CountMismatch {
        /// The count stored in the header.
        declared: u64,
        /// The number of entries actually present.
        actual: u64,
    },
    /// A zipmap or intset with no entries (Redis rejects them).
    #[error("empty container")]
    Empty,
    /// An entry (or its header) runs past the end of the blob.
    #[error("entry out of bounds")]
    EntryOutOfBounds,
    /// An entry starts with a byte that is no valid encoding.
    #[error("invalid entry encoding 0x{byte:02x}")]
    InvalidEncoding {
        /// The offending byte.
        byte: u8,
    },
    /// An intset header names an element width other than 2, 4 or 8.
    #[error("invalid intset encoding {0}")]
    InvalidIntsetEncoding(u32),
    /// An intset element is not strictly greater than the one before it.
    #[error("intset not strictly ascending")]
    IntsetUnsorted,
    /// An LZF back-reference points before the start of the output.
    #[error("lzf back-reference before start of output")]
    LzfBadBackReference,
    /// The LZF stream would produce more bytes than declared.
    #[error("lzf output longer than declared {declared}")]
    LzfOutputTooLong {
        /// The declared uncompressed length.
        declared: usize,
    },
    /// The LZF stream ended having produced fewer bytes than declared.
    #[error("lzf output {actual} shorter than declared {declared}")]
    LzfOutputTooShort {
        /// The declared uncompressed length.
        declared: usize,
        /// The number of bytes actually produced.
        actual: usize,
    },
    /// The LZF stream ends in the middle of a literal run or back-reference.
    #[error("lzf input truncated")]
    LzfTruncated,
    /// The container does not end with the `0xFF` end marker where it should.
    #[error("missing end marker")]
    MissingTerminator,
    /// A ziplist prevlen does not equal the previous entry's size.
    #[error("ziplist prevlen {declared} does not match previous entry size {actual}")]
    PrevlenMismatch {
        /// The value stored in the prevlen field.
        declared: u64,
        /// The real size of the previous entry.
        actual: usize,
    },
    /// The ziplist `zltail` does not point at the last entry.
    #[error("ziplist tail offset {declared} does not point at the last entry")]
    TailMismatch {
        /// The value stored in `zltail`.
        declared: u64,
    },
    /// The total-bytes field of the header differs from the blob size.
    #[error("header total bytes {declared} does not match blob size {actual}")]
    TotalBytesMismatch {
        /// The size stored in the header.
        declared: u64,
        /// The size of the blob.
        actual: usize,
    },
    /// Bytes follow the end marker (or, for an intset, the last element).
    #[error("trailing bytes after end of container")]
    TrailingBytes,
}

/// One element of a ziplist or listpack: either a byte string or an integer.
///
/// Integers are stored compactly by Redis but are logically strings: their value is the decimal
/// text of the integer.
///
/// ```
/// use respsync::rdb::encoding::PackedValue;
///
/// let mut out = Vec::new();
/// PackedValue::Int(-42).write_decimal(&mut out);
/// PackedValue::Bytes(b"/x").write_decimal(&mut out);
/// assert_eq!(out, b"-42/x");
/// assert_eq!(&*PackedValue::Int(7).to_bytes(), b"7");
/// assert_eq!(PackedValue::Bytes(b"12").to_i64(), Some(12));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PackedValue<'a> {
    /// A byte string, borrowed from the container.
    Bytes(&'a [u8]),
    /// An integer entry.
    Int(i64),
}

impl<'a> PackedValue<'a> {
    /// Appends the logical string value to `out`: the bytes as they are, or the decimal text of
    /// an integer.
    pub fn write_decimal(&self, out: &mut Vec<u8>) {
        match *self {
            PackedValue::Bytes(b) => out.extend_from_slice(b),
            PackedValue::Int(v) => write_i64(v, out),
        }
    }

    /// The logical string value: borrowed bytes, or the decimal text of an integer.
    pub fn to_bytes(&self) -> Cow<'a, [u8]> {
        match *self {
            PackedValue::Bytes(b) => Cow::Borrowed(b),
            PackedValue::Int(v) => {
                let mut out = Vec::with_capacity(20);
                write_i64(v, &mut out);
                Cow::Owned(out)
            }
        }
    }

    /// The integer value: an `Int` entry, or a `Bytes` entry holding the canonical decimal form
    /// of a 64-bit integer (as Redis's `string2ll` accepts it: no sign `+`, no leading zeros,
    /// no `-0`, no spaces).
    pub fn to_i64(&self) -> Option<i64> {
        match *self {
            PackedValue::Bytes(b) => parse_canonical_i64(b),
            PackedValue::Int(v) => Some(v),
        }
    }

    /// Length in bytes of the logical string value.
    pub fn len(&self) -> usize {
        match *self {
            PackedValue::Bytes(b) => b.len(),
            PackedValue::Int(v) => decimal_len(v),
        }
    }

    /// Whether the logical string value is empty (integers never are).
    pub fn is_empty(&self) -> bool {
        matches!(self, PackedValue::Bytes(b) if b.is_empty())
    }
}

impl fmt::Display for PackedValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PackedValue::Bytes(b) => write!(f, "{}", String::from_utf8_lossy(b)),
            PackedValue::Int(v) => write!(f, "{v}"),
        }
    }
}

/// Appends the decimal text of `v` to `out` without allocating.
fn write_i64(v: i64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[pos..]);
}

/// Number of bytes of the decimal text of `v`.
fn decimal_len(v: i64) -> usize {
    let mut n = v.unsigned_abs();
    let mut len = usize::from(v < 0) + 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Parses `s` if it is the canonical decimal text of an `i64`, with the rules of Redis's
/// `string2ll` (used to decide whether a string is stored as an integer): at most 20 bytes, no
/// `+`, no leading zeros, no `-0`, no spaces, no overflow.
///
/// ```
/// use respsync::rdb::encoding::parse_canonical_i64;
///
/// assert_eq!(parse_canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
/// assert_eq!(parse_canonical_i64(b"007"), None);
/// assert_eq!(parse_canonical_i64(b"-0"), None);
/// assert_eq!(parse_canonical_i64(b"+1"), None);
/// ```
pub fn parse_canonical_i64(s: &[u8]) -> Option<i64> {
    match s {
        [] => None,
        [b'0'] => Some(0),
        _ if s.len() > 20 => None,
        [b'-', digits @ ..] => {
            let mag = parse_digits(digits)?;
            // i64::MIN's magnitude is one more than i64::MAX.
            if mag == 1u64 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(mag).ok().map(|v| -v)
            }
        }
        digits => i64::try_from(parse_digits(digits)?).ok(),
    }
}

/// Parses a non-empty run of ASCII digits with no leading zero into a `u64`.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}

/// Reads `N` bytes at `pos`, or `None` past the end.
fn read_array<const N: usize>(blob: &[u8], pos: usize) -> Option<[u8; N]> {
    let end = pos.checked_add(N)?;
    blob.get(pos..end)?.try_into().ok()
}

/// Sign-extends the low 24 bits of `v`.
fn sign_extend_24(v: u32) -> i64 {
    i64::from(((v << 8) as i32) >> 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_ints() {
        assert_eq!(parse_canonical_i64(b"0"), Some(0));
        assert_eq!(parse_canonical_i64(b"-1"), Some(-1));
        assert_eq!(parse_canonical_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_canonical_i64(b"9223372036854775808"), None);
        assert_eq!(parse_canonical_i64(b"-9223372036854775809"), None);
        assert_eq!(parse_canonical_i64(b"00"), None);
        assert_eq!(parse_canonical_i64(b"-"), None);
        assert_eq!(parse_canonical_i64(b""), None);
        assert_eq!(parse_canonical_i64(b" 1"), None);
        assert_eq!(parse_canonical_i64(b"1 "), None);
        assert_eq!(parse_canonical_i64(b"12a"), None);
        assert_eq!(parse_canonical_i64(b"99999999999999999999"), None);
    }

    #[test]
    fn sign_extension() {
        assert_eq!(sign_extend_24(0x7f_ffff), 8_388_607);
        assert_eq!(sign_extend_24(0x80_0000), -8_388_608);
        assert_eq!(sign_extend_24(0xff_ffff), -1);
    }

    proptest! {
        #[test]
        fn decimal_roundtrip(v in any::<i64>()) {
            let mut out = Vec::new();
            write_i64(v, &mut out);
            prop_assert_eq!(out.clone(), v.to_string().into_bytes());
            prop_assert_eq!(decimal_len(v), out.len());
            prop_assert_eq!(parse_canonical_i64(&out), Some(v));
            prop_assert_eq!(PackedValue::Int(v).len(), out.len());
        }

        #[test]
        fn canonical_matches_std(s in "-?[0-9]{0,21}") {
            let std = s.parse::<i64>().ok().filter(|v| v.to_string() == s);
            prop_assert_eq!(parse_canonical_i64(s.as_bytes()), std);
        }
    }
}
