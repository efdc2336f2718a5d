//! Listpacks: the packed lists of RDB types 16, 17, 20, 25, stream nodes and quicklist 2 (18)
//! packed nodes.
//!
//! ```text
//! total_bytes:u32le  num_elements:u16le  (encoding data backlen)*  0xff
//! ```
//!
//! [`Listpack::parse`] checks everything Redis's `lpValidateIntegrity` checks in deep mode: the
//! header byte count equals the blob size, the blob ends with `0xff`, every entry has a valid
//! encoding and lies inside the blob, every backlen has the size Redis derives from the entry
//! length and decodes to that length, and `num_elements` equals the number of entries unless it
//! is 65535 ("count them").
//!
//! ```
//! use respsync::rdb::encoding::{listpack::{Listpack, ListpackBuilder}, PackedValue};
//!
//! let mut b = ListpackBuilder::new();
//! b.push(b"field");
//! b.push(b"-7");
//! let blob = b.finish();
//! assert_eq!(blob, [0x11, 0, 0, 0, 2, 0, 0x85, b'f', b'i', b'e', b'l', b'd', 6, 0xdf, 0xf9, 2, 0xff]);
//!
//! let lp = Listpack::parse(&blob).unwrap();
//! assert_eq!(lp.iter().collect::<Vec<_>>(), [PackedValue::Bytes(b"field"), PackedValue::Int(-7)]);
//! ```

use super::{
    parse_canonical_i64, read_array, sign_extend_24, ContainerError, ContainerErrorKind,
    PackedValue,
};

/// Size of the fixed header.
const HEADER: usize = 6;
/// The end marker.
const END: u8 = 0xff;
/// `num_elements` value meaning "too many to count in 16 bits; walk the listpack".
pub const UNKNOWN_LEN: u16 = u16::MAX;

/// A validated listpack borrowed from its blob.
///
/// ```
/// use respsync::rdb::encoding::{listpack::Listpack, ContainerErrorKind};
///
/// let empty = [7, 0, 0, 0, 0, 0, 0xff];
/// assert!(Listpack::parse(&empty).unwrap().is_empty());
///
/// // One 7-bit integer entry (5) whose backlen says 2 instead of 1.
/// let bad = [9, 0, 0, 0, 1, 0, 0x05, 0x02, 0xff];
/// let err = Listpack::parse(&bad).unwrap_err();
/// assert_eq!(err.offset, 6);
/// assert!(matches!(err.kind, ContainerErrorKind::BacklenMismatch { declared: 2, actual: 1 }));
/// ```
#[derive(Clone, Copy)]
pub struct Listpack<'a> {
    blob: &'a [u8],
    len: usize,
}

impl<'a> Listpack<'a> {
    /// Validates `blob` completely; see the [module docs](self) for what is checked.
    pub fn parse(blob: &'a [u8]) -> Result<Self, ContainerError> {
        if blob.len() < HEADER + 1 {
            return Err(ContainerError::new(
                ContainerErrorKind::BlobTooShort { len: blob.len() },
                0,
            ));
        }
        let total = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]);
        if u64::from(total) != blob.len() as u64 {
            return Err(ContainerError::new(
                ContainerErrorKind::TotalBytesMismatch {
                    declared: u64::from(total),
                    actual: blob.len(),
                },
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
        let num = u16::from_le_bytes([blob[4], blob[5]]);
        let mut pos = HEADER;
        let mut count = 0usize;
        while blob[pos] != END {
            let entry = Entry::decode(blob, pos, last)?;
            let backlen_at = pos + entry.encoded;
            let backlen = decode_backlen(blob, backlen_at + entry.backlen - 1);
            if backlen != Some(entry.encoded as u64) {
                return Err(ContainerError::new(
                    ContainerErrorKind::BacklenMismatch {
                        declared: backlen.unwrap_or(u64::MAX),
                        actual: entry.encoded,
                    },
                    pos,
                ));
            }
            pos = backlen_at + entry.backlen;
            count += 1;
        }
        if pos != last {
            return Err(ContainerError::new(ContainerErrorKind::TrailingBytes, pos));
        }
        if num != UNKNOWN_LEN && usize::from(num) != count {
            return Err(ContainerError::new(
                ContainerErrorKind::CountMismatch {
                    declared: u64::from(num),
                    actual: count as u64,
                },
                4,
            ));
        }
        Ok(Self { blob, len: count })
    }

    /// Number of entries (counted when the header says 65535).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the listpack has no entries.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in order.
    pub fn iter(&self) -> Iter<'a> {
        Iter {
            blob: self.blob,
            pos: HEADER,
            remaining: self.len,
        }
    }

    /// The blob this listpack was parsed from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.blob
    }
}

impl std::fmt::Debug for Listpack<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listpack")
            .field("len", &self.len)
            .field("bytes", &self.blob.len())
            .finish()
    }
}

impl<'a> IntoIterator for &Listpack<'a> {
    type Item = PackedValue<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the entries of a [`Listpack`].
#[derive(Clone)]
pub struct Iter<'a> {
    blob: &'a [u8],
    pos: usize,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = PackedValue<'a>;

    fn next(&mut self) -> Option<PackedValue<'a>> {
        if self.remaining == 0 {
            return None;
        }
        // The blob was validated by `Listpack::parse`, so decoding cannot fail here; if it
        // somehow did, the iterator just ends.
        let entry = Entry::decode(self.blob, self.pos, self.blob.len() - 1).ok()?;
        self.pos += entry.encoded + entry.backlen;
        self.remaining -= 1;
        Some(entry.value)
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

/// One decoded entry.
struct Entry<'a> {
    /// Size of encoding + data.
    encoded: usize,
    /// Size of the backlen that follows.
    backlen: usize,
    value: PackedValue<'a>,
}

impl<'a> Entry<'a> {
    /// Decodes the entry at `pos`; it must end (backlen included) before `end`, the end
    /// marker's offset.
    fn decode(blob: &'a [u8], pos: usize, end: usize) -> Result<Self, ContainerError> {
        let oob = || ContainerError::new(ContainerErrorKind::EntryOutOfBounds, pos);
        let region = blob.get(..end).ok_or_else(oob)?;
        let enc = *region.get(pos).ok_or_else(oob)?;
        let int = |v: Option<i64>, encoded: usize| -> Result<(PackedValue<'a>, usize), _> {
            v.map(|v| (PackedValue::Int(v), encoded)).ok_or_else(oob)
        };
        let string = |hdr: usize, len: usize| -> Result<(PackedValue<'a>, usize), _> {
            let start = pos + hdr;
            let stop = start.checked_add(len).ok_or_else(oob)?;
            let bytes = region.get(start..stop).ok_or_else(oob)?;
            Ok((PackedValue::Bytes(bytes), hdr + len))
        };
        let (value, encoded) = match enc {
            0x00..=0x7f => (PackedValue::Int(i64::from(enc)), 1),
            0x80..=0xbf => string(1, usize::from(enc & 0x3f))?,
            0xc0..=0xdf => {
                let b = *region.get(pos + 1).ok_or_else(oob)?;
                let v = (i64::from(enc & 0x1f) << 8) | i64::from(b);
                (
                    PackedValue::Int(if v >= 1 << 12 { v - (1 << 13) } else { v }),
                    2,
                )
            }
            0xe0..=0xef => {
                let b = *region.get(pos + 1).ok_or_else(oob)?;
                string(2, (usize::from(enc & 0x0f) << 8) | usize::from(b))?
            }
            0xf0 => {
                let len = read_array::<4>(region, pos + 1).ok_or_else(oob)?;
                string(5, u32::from_le_bytes(len) as usize)?
            }
            0xf1 => int(
                read_array::<2>(region, pos + 1).map(|b| i64::from(i16::from_le_bytes(b))),
                3,
            )?,
            0xf2 => int(
                read_array::<3>(region, pos + 1)
                    .map(|b| sign_extend_24(u32::from_le_bytes([b[0], b[1], b[2], 0]))),
                4,
            )?,
            0xf3 => int(
                read_array::<4>(region, pos + 1).map(|b| i64::from(i32::from_le_bytes(b))),
                5,
            )?,
            0xf4 => int(read_array::<8>(region, pos + 1).map(i64::from_le_bytes), 9)?,
            _ => {
                return Err(ContainerError::new(
                    ContainerErrorKind::InvalidEncoding { byte: enc },
                    pos,
                ))
            }
        };
        let backlen = backlen_size(encoded);
        let stop = pos
            .checked_add(encoded)
            .and_then(|p| p.checked_add(backlen))
            .ok_or_else(oob)?;
        if stop > end {
            return Err(oob());
        }
        Ok(Entry {
            encoded,
            backlen,
            value,
        })
    }
}

/// Size of the backlen Redis writes after an entry whose encoding + data take `len` bytes
/// (`lpEncodeBacklen`, with its exact thresholds).
pub fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Appends the backlen for an entry of `len` bytes: 7 bits per byte, most significant group
/// first, every byte but the first with bit 7 set.
fn write_backlen(len: usize, out: &mut Vec<u8>) {
    let n = backlen_size(len);
    for i in (0..n).rev() {
        let group = ((len >> (7 * i)) & 0x7f) as u8;
        out.push(if i == n - 1 { group } else { group | 0x80 });
    }
}

/// Decodes a backlen backwards from its last byte at `last`, as Redis's `lpDecodeBacklen` does:
/// stop at the first byte (going backwards) with bit 7 clear; more than 5 bytes is invalid.
fn decode_backlen(blob: &[u8], last: usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0;
    let mut at = last;
    loop {
        let b = *blob.get(at)?;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
        at = at.checked_sub(1)?;
    }
}

/// Builds a listpack exactly as Redis's `lpAppend` does.
///
/// Strings that are the canonical decimal form of an `i64` are stored as the smallest integer
/// encoding (7-bit unsigned, 13-bit, 16/24/32/64-bit), like Redis's `lpEncodeGetType`; other
/// strings use the 6-, 12- or 32-bit length forms. Backlens use Redis's sizes and
/// `num_elements` saturates at 65535.
///
/// Redis never lets a listpack grow past 1 GiB; the builder does not check, so callers that
/// can produce huge containers should watch [`size`](Self::size). Above `u32::MAX` bytes the
/// header would be wrong.
///
/// ```
/// use respsync::rdb::encoding::listpack::{Listpack, ListpackBuilder};
///
/// let mut b = ListpackBuilder::new();
/// for v in [&b"a"[..], b"100", b"007"] {
///     b.push(v);
/// }
/// let blob = b.finish();
/// let lp = Listpack::parse(&blob).unwrap();
/// let values: Vec<_> = lp.iter().map(|v| v.to_bytes().into_owned()).collect();
/// assert_eq!(values, [&b"a"[..], b"100", b"007"]);
/// ```
#[derive(Debug, Clone)]
pub struct ListpackBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackBuilder {
    /// An empty listpack.
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; HEADER]);
        Self { buf, count: 0 }
    }

    /// Appends a string element (stored as an integer if Redis would).
    pub fn push(&mut self, value: &[u8]) {
        if let Some(v) = parse_canonical_i64(value) {
            return self.push_int(v);
        }
        let start = self.buf.len();
        let len = value.len();
        if len < 64 {
            self.buf.push(0x80 | len as u8);
        } else if len < 4096 {
            self.buf.push(0xe0 | (len >> 8) as u8);
            self.buf.push((len & 0xff) as u8);
        } else {
            self.buf.push(0xf0);
            self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(value);
        self.end_entry(start);
    }

    /// Appends an integer element, in the smallest encoding that holds it.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = if v < 0 { (1 << 13) + v } else { v } as u16;
            self.buf.push(0xc0 | (u >> 8) as u8);
            self.buf.push((u & 0xff) as u8);
        } else if let Ok(v) = i16::try_from(v) {
            self.buf.push(0xf1);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            self.buf.push(0xf2);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if let Ok(v) = i32::try_from(v) {
            self.buf.push(0xf3);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else {
            self.buf.push(0xf4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self.end_entry(start);
    }

    /// Appends an element taken from another listpack or ziplist (integers stay integers,
    /// strings go through [`push`](Self::push)).
    pub fn push_value(&mut self, value: PackedValue<'_>) {
        match value {
            PackedValue::Bytes(b) => self.push(b),
            PackedValue::Int(v) => self.push_int(v),
        }
    }

    /// Number of elements pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size in bytes the finished listpack will have.
    pub fn size(&self) -> usize {
        self.buf.len() + 1
    }

    /// The finished listpack blob.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(END);
        let total = self.buf.len() as u32;
        let num = u16::try_from(self.count).unwrap_or(UNKNOWN_LEN);
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        self.buf[4..6].copy_from_slice(&num.to_le_bytes());
        self.buf
    }

    fn end_entry(&mut self, start: usize) {
        let encoded = self.buf.len() - start;
        write_backlen(encoded, &mut self.buf);
        self.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wrap(entries: &[u8], count: u16) -> Vec<u8> {
        let total = (HEADER + entries.len() + 1) as u32;
        let mut blob = Vec::new();
        blob.extend_from_slice(&total.to_le_bytes());
        blob.extend_from_slice(&count.to_le_bytes());
        blob.extend_from_slice(entries);
        blob.push(END);
        blob
    }

    fn values(blob: &[u8]) -> Vec<Vec<u8>> {
        let lp = Listpack::parse(blob).unwrap();
        let v: Vec<_> = lp.iter().map(|v| v.to_bytes().into_owned()).collect();
        assert_eq!(v.len(), lp.len());
        v
    }

    fn err(blob: &[u8]) -> ContainerError {
        Listpack::parse(blob).unwrap_err()
    }

    fn built(value: &[u8]) -> Vec<u8> {
        let mut b = ListpackBuilder::new();
        b.push(value);
        let blob = b.finish();
        blob[HEADER..blob.len() - 1].to_vec()
    }

    #[test]
    fn exact_entry_bytes() {
        assert_eq!(built(b"5"), [0x05, 0x01]);
        assert_eq!(built(b"127"), [0x7f, 0x01]);
        assert_eq!(built(b"128"), [0xc0, 0x80, 0x02]);
        assert_eq!(built(b"-1"), [0xdf, 0xff, 0x02]);
        assert_eq!(built(b"-4096"), [0xd0, 0x00, 0x02]);
        assert_eq!(built(b"4095"), [0xcf, 0xff, 0x02]);
        assert_eq!(built(b"4096"), [0xf1, 0x00, 0x10, 0x03]);
        assert_eq!(built(b"-32769"), [0xf2, 0xff, 0x7f, 0xff, 0x04]);
        assert_eq!(built(b"8388608"), [0xf3, 0x00, 0x00, 0x80, 0x00, 0x05]);
        assert_eq!(
            built(b"-9223372036854775808"),
            [0xf4, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x09]
        );
        assert_eq!(built(b""), [0x80, 0x01]);
        assert_eq!(built(b"007"), [0x83, b'0', b'0', b'7', 0x04]);
        // 12-bit string: high nibble first.
        let e = built(&[b'q'; 300]);
        assert_eq!(&e[..2], &[0xe1, 0x2c]);
        assert_eq!(&e[302..], &[0x02, 0xae]); // backlen 302 = 2 << 7 | 46
                                              // 32-bit string: little-endian length.
        let e = built(&[b'r'; 5000]);
        assert_eq!(&e[..5], &[0xf0, 0x88, 0x13, 0x00, 0x00]);
        assert_eq!(&e[5005..], &[0x27, 0x8d]); // backlen 5005
    }

    #[test]
    fn decodes_every_encoding() {
        let mut entries = Vec::new();
        for v in [
            &b"0"[..],
            b"100",
            b"-100",
            b"1000",
            b"-20000",
            b"20000",
            b"-5000000",
            b"5000000",
            b"-2000000000",
            b"2000000000",
            b"-9000000000",
            b"9000000000",
            b"hello",
        ] {
            entries.extend_from_slice(&built(v));
        }
        entries.extend_from_slice(&built(&[b'x'; 100]));
        entries.extend_from_slice(&built(&[b'y'; 4096]));
        let v = values(&wrap(&entries, 15));
        assert_eq!(v[2], b"-100");
        assert_eq!(v[6], b"-5000000");
        assert_eq!(v[10], b"-9000000000");
        assert_eq!(v[12], b"hello");
        assert_eq!(v[13], vec![b'x'; 100]);
        assert_eq!(v[14], vec![b'y'; 4096]);
    }

    #[test]
    fn backlen_sizes_and_bytes() {
        let cases: [(usize, &[u8]); 10] = [
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x01, 0x80]),
            (200, &[0x01, 0xc8]),
            (16382, &[0x7f, 0xfe]),
            (16383, &[0x00, 0xff, 0xff]),
            (2097150, &[0x7f, 0xff, 0xfe]),
            (2097151, &[0x00, 0xff, 0xff, 0xff]),
            (268435454, &[0x7f, 0xff, 0xff, 0xfe]),
            (268435455, &[0x00, 0xff, 0xff, 0xff, 0xff]),
        ];
        for (len, bytes) in cases {
            let mut out = Vec::new();
            write_backlen(len, &mut out);
            assert_eq!(out, bytes, "backlen of {len}");
            assert_eq!(backlen_size(len), bytes.len());
            assert_eq!(decode_backlen(&out, out.len() - 1), Some(len as u64));
        }
        let mut out = Vec::new();
        write_backlen(u32::MAX as usize, &mut out);
        assert_eq!(decode_backlen(&out, 4), Some(u64::from(u32::MAX)));
        // More than 5 continuation bytes is invalid.
        assert_eq!(decode_backlen(&[0x80; 6], 5), None);
    }

    #[test]
    fn four_byte_backlen() {
        // A string entry of exactly 2097151 bytes (5-byte header + data): 4-byte backlen.
        let data = vec![b'b'; 2097151 - 5];
        let mut b = ListpackBuilder::new();
        b.push(&data);
        b.push(b"1");
        let blob = b.finish();
        let at = HEADER + 2097151;
        assert_eq!(&blob[at..at + 4], &[0x00, 0xff, 0xff, 0xff]);
        let lp = Listpack::parse(&blob).unwrap();
        let v: Vec<_> = lp.iter().collect();
        assert_eq!(v, [PackedValue::Bytes(&data), PackedValue::Int(1)]);

        // One byte less: 3-byte backlen.
        let mut b = ListpackBuilder::new();
        b.push(&data[1..]);
        let blob = b.finish();
        assert_eq!(blob.len(), HEADER + 2097150 + 3 + 1);
        assert_eq!(Listpack::parse(&blob).unwrap().len(), 1);
    }

    #[test]
    fn five_byte_backlen() {
        // A 268435455-byte entry, built in a zeroed buffer whose string data is never touched,
        // so the test stays fast.
        let encoded = 268435455usize;
        let total = HEADER + encoded + 5 + 1;
        let mut blob = vec![0u8; total];
        blob[0..4].copy_from_slice(&(total as u32).to_le_bytes());
        blob[4..6].copy_from_slice(&1u16.to_le_bytes());
        blob[HEADER] = 0xf0;
        blob[HEADER + 1..HEADER + 5].copy_from_slice(&((encoded - 5) as u32).to_le_bytes());
        let at = HEADER + encoded;
        blob[at..at + 5].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff]);
        blob[total - 1] = END;
        let lp = Listpack::parse(&blob).unwrap();
        assert_eq!(lp.len(), 1);
        assert_eq!(lp.iter().next().map(|v| v.len()), Some(encoded - 5));
        // Like Redis, the backlen is decoded backwards and compared with the entry size.
        blob[at..at + 5].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(
            err(&blob).kind,
            ContainerErrorKind::BacklenMismatch {
                declared: 268435454,
                actual: encoded
            }
        );
    }

    #[test]
    fn unknown_count_is_counted() {
        let blob = wrap(&[0x01, 0x01, 0x02, 0x01, 0x81, b'z', 0x02], UNKNOWN_LEN);
        assert_eq!(values(&blob), [&b"1"[..], b"2", b"z"]);
    }

    #[test]
    fn builder_saturates_count_and_parser_counts_past_it() {
        let mut b = ListpackBuilder::new();
        for i in 0..70_000 {
            b.push_int(i % 100);
        }
        let blob = b.finish();
        assert_eq!(&blob[4..6], &[0xff, 0xff]);
        let lp = Listpack::parse(&blob).unwrap();
        assert_eq!(lp.len(), 70_000);
        assert_eq!(lp.iter().last(), Some(PackedValue::Int(99)));

        let mut b = ListpackBuilder::new();
        for i in 0..65_534 {
            b.push_int(i % 100);
        }
        assert_eq!(&b.clone().finish()[4..6], &[0xfe, 0xff]);
        b.push_int(1);
        assert_eq!(&b.finish()[4..6], &[0xff, 0xff]);
    }

    #[test]
    fn corrupt_listpacks() {
        let good = wrap(&[0x81, b'a', 0x02], 1);
        assert!(Listpack::parse(&good).is_ok());
        assert_eq!(
            err(&good[..6]),
            ContainerError::new(ContainerErrorKind::BlobTooShort { len: 6 }, 0)
        );
        let mut b = good.clone();
        b[0] = 9;
        assert_eq!(
            err(&b),
            ContainerError::new(
                ContainerErrorKind::TotalBytesMismatch {
                    declared: 9,
                    actual: 10
                },
                0
            )
        );
        let mut b = good.clone();
        b[9] = 0;
        assert_eq!(
            err(&b),
            ContainerError::new(ContainerErrorKind::MissingTerminator, 9)
        );
        let mut b = good.clone();
        b[4] = 3;
        assert_eq!(
            err(&b),
            ContainerError::new(
                ContainerErrorKind::CountMismatch {
                    declared: 3,
                    actual: 1
                },
                4
            )
        );
        // Backlen mismatch.
        let e = err(&wrap(&[0x81, b'a', 0x03], 1));
        assert_eq!(
            e,
            ContainerError::new(
                ContainerErrorKind::BacklenMismatch {
                    declared: 3,
                    actual: 2
                },
                6
            )
        );
        // Backlen with an extra (non-minimal) byte.
        let e = err(&wrap(&[0x81, b'a', 0x80, 0x02], 1));
        assert!(matches!(
            e.kind,
            ContainerErrorKind::BacklenMismatch { .. } | ContainerErrorKind::InvalidEncoding { .. }
        ));
        // Entries past the end.
        for entries in [
            &[0x85, b'a', 0x06][..],
            &[0xe0],
            &[0xe0, 0x10, 0x00],
            &[0xf0, 0x01, 0x00, 0x00],
            &[0xf0, 0xff, 0xff, 0xff, 0xff, 0x00],
            &[0xc0],
            &[0xf1, 0x00],
            &[0xf2, 0x00, 0x00],
            &[0xf3, 0x00, 0x00, 0x00],
            &[0xf4, 0, 0, 0, 0, 0, 0, 0],
            &[0x01], // backlen missing
        ] {
            let e = err(&wrap(entries, 1));
            assert_eq!(
                e,
                ContainerError::new(ContainerErrorKind::EntryOutOfBounds, 6),
                "{entries:x?}"
            );
        }
        for byte in 0xf5..=0xfe {
            let e = err(&wrap(&[byte, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1));
            assert_eq!(
                e,
                ContainerError::new(ContainerErrorKind::InvalidEncoding { byte }, 6)
            );
        }
        // An end marker before the real end.
        let e = err(&wrap(&[0x01, 0x01, 0xff, 0x00], 1));
        assert_eq!(e, ContainerError::new(ContainerErrorKind::TrailingBytes, 8));
    }

    fn element() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            (-5000i64..5000).prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..80),
            (0usize..20_000).prop_map(|n| vec![b'z'; n]),
            Just(b"-0".to_vec()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn builder_roundtrip(elems in proptest::collection::vec(element(), 0..40)) {
            let mut b = ListpackBuilder::new();
            for e in &elems {
                b.push(e);
            }
            prop_assert_eq!(b.len(), elems.len());
            let size = b.size();
            let blob = b.finish();
            prop_assert_eq!(blob.len(), size);
            prop_assert_eq!(values(&blob), elems);
        }

        #[test]
        fn int_roundtrip(ints in proptest::collection::vec(any::<i64>(), 0..40)) {
            let mut b = ListpackBuilder::new();
            for &v in &ints {
                b.push_int(v);
            }
            let blob = b.finish();
            let lp = Listpack::parse(&blob).unwrap();
            let got: Vec<_> = lp.iter().collect();
            let want: Vec<_> = ints.iter().map(|&v| PackedValue::Int(v)).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(mut blob in proptest::collection::vec(any::<u8>(), 0..200), fix in any::<bool>()) {
            if fix && blob.len() >= 7 {
                let n = blob.len() as u32;
                blob[0..4].copy_from_slice(&n.to_le_bytes());
                *blob.last_mut().unwrap() = END;
            }
            if let Ok(lp) = Listpack::parse(&blob) {
                prop_assert_eq!(lp.iter().count(), lp.len());
            }
        }

        #[test]
        fn mutations_never_panic(elems in proptest::collection::vec(element(), 1..10), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut b = ListpackBuilder::new();
            for e in &elems {
                b.push(e);
            }
            let mut blob = b.finish();
            let i = at.index(blob.len());
            blob[i] = byte;
            if let Ok(lp) = Listpack::parse(&blob) {
                prop_assert_eq!(lp.iter().count(), lp.len());
            }
        }
    }
}
