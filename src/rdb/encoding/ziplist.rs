//! Ziplists: the packed lists of RDB types 10, 12, 13 and quicklist (14) nodes.
//!
//! ```text
//! zlbytes:u32le  zltail:u32le  zllen:u16le  entry*  0xff
//! entry = prevlen (1 byte if < 254, else 0xfe + u32le)  encoding  data
//! ```
//!
//! [`Ziplist::parse`] checks everything Redis's `ziplistValidateIntegrity` checks in deep mode:
//! the header byte count equals the blob size, the blob ends with `0xff`, every entry has a valid
//! encoding and lies inside the blob, every `prevlen` equals the real size of the previous entry
//! (the 5-byte form may hold a small value, a cascade-update leftover), `zltail` points at the
//! last entry, and `zllen` equals the number of entries unless it is 65535 ("count them").
//!
//! ```
//! use respsync::rdb::encoding::{ziplist::{Ziplist, ZiplistBuilder}, PackedValue};
//!
//! // The example from ziplist.c: the list ["2", "5"].
//! let blob = [0x0f, 0, 0, 0, 0x0c, 0, 0, 0, 0x02, 0, 0x00, 0xf3, 0x02, 0xf6, 0xff];
//! let zl = Ziplist::parse(&blob).unwrap();
//! assert_eq!(zl.len(), 2);
//! assert_eq!(zl.iter().collect::<Vec<_>>(), [PackedValue::Int(2), PackedValue::Int(5)]);
//!
//! let mut b = ZiplistBuilder::new();
//! b.push(b"2");
//! b.push(b"5");
//! assert_eq!(b.finish(), blob);
//! ```

use super::{
    parse_canonical_i64, read_array, sign_extend_24, ContainerError, ContainerErrorKind,
    PackedValue,
};

/// Size of the fixed header.
const HEADER: usize = 10;
/// The end marker.
const END: u8 = 0xff;
/// `zllen` value meaning "too many to count in 16 bits; walk the list".
pub const UNKNOWN_LEN: u16 = u16::MAX;

/// A validated ziplist borrowed from its blob.
///
/// ```
/// use respsync::rdb::encoding::ziplist::Ziplist;
///
/// let empty = [0x0b, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0xff];
/// assert!(Ziplist::parse(&empty).unwrap().is_empty());
/// assert!(Ziplist::parse(&empty[..10]).is_err());
/// ```
#[derive(Clone, Copy)]
pub struct Ziplist<'a> {
    blob: &'a [u8],
    len: usize,
}

impl<'a> Ziplist<'a> {
    /// Validates `blob` completely; see the [module docs](self) for what is checked.
    pub fn parse(blob: &'a [u8]) -> Result<Self, ContainerError> {
        if blob.len() < HEADER + 1 {
            return Err(ContainerError::new(
                ContainerErrorKind::BlobTooShort { len: blob.len() },
                0,
            ));
        }
        let zlbytes = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]);
        if u64::from(zlbytes) != blob.len() as u64 {
            return Err(ContainerError::new(
                ContainerErrorKind::TotalBytesMismatch {
                    declared: u64::from(zlbytes),
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
        let zltail = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]);
        let tail_error = || {
            ContainerError::new(
                ContainerErrorKind::TailMismatch {
                    declared: u64::from(zltail),
                },
                4,
            )
        };
        if zltail as usize > last {
            return Err(tail_error());
        }
        let zllen = u16::from_le_bytes([blob[8], blob[9]]);

        let mut pos = HEADER;
        let mut prev_size = 0usize;
        let mut prev_start = None;
        let mut count = 0usize;
        while blob[pos] != END {
            let entry = Entry::decode(blob, pos, last)?;
            if entry.prevlen != prev_size as u64 {
                return Err(ContainerError::new(
                    ContainerErrorKind::PrevlenMismatch {
                        declared: entry.prevlen,
                        actual: prev_size,
                    },
                    pos,
                ));
            }
            prev_size = entry.size;
            prev_start = Some(pos);
            pos += entry.size;
            count += 1;
        }
        if pos != last {
            // An entry starting with 0xff before the real end.
            return Err(ContainerError::new(ContainerErrorKind::TrailingBytes, pos));
        }
        if let Some(start) = prev_start {
            if start != zltail as usize {
                return Err(tail_error());
            }
        }
        if zllen != UNKNOWN_LEN && usize::from(zllen) != count {
            return Err(ContainerError::new(
                ContainerErrorKind::CountMismatch {
                    declared: u64::from(zllen),
                    actual: count as u64,
                },
                8,
            ));
        }
        Ok(Self { blob, len: count })
    }

    /// Number of entries (counted when the header says 65535).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the ziplist has no entries.
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

    /// The blob this ziplist was parsed from.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.blob
    }
}

impl std::fmt::Debug for Ziplist<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ziplist")
            .field("len", &self.len)
            .field("bytes", &self.blob.len())
            .finish()
    }
}

impl<'a> IntoIterator for &Ziplist<'a> {
    type Item = PackedValue<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the entries of a [`Ziplist`].
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
        // The blob was validated by `Ziplist::parse`, so decoding cannot fail here; if it
        // somehow did, the iterator just ends.
        let entry = Entry::decode(self.blob, self.pos, self.blob.len() - 1).ok()?;
        self.pos += entry.size;
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
    prevlen: u64,
    /// Whole entry size: prevlen field + encoding + data.
    size: usize,
    value: PackedValue<'a>,
}

impl<'a> Entry<'a> {
    /// Decodes the entry at `pos`; everything must lie before `end` (the end marker's offset).
    fn decode(blob: &'a [u8], pos: usize, end: usize) -> Result<Self, ContainerError> {
        let oob = || ContainerError::new(ContainerErrorKind::EntryOutOfBounds, pos);
        let region = blob.get(..end).ok_or_else(oob)?;
        let first = *region.get(pos).ok_or_else(oob)?;
        let (prevlen, plen) = if first < 0xfe {
            (u64::from(first), 1)
        } else {
            let b: [u8; 4] = read_array(region, pos + 1).ok_or_else(oob)?;
            (u64::from(u32::from_le_bytes(b)), 5)
        };
        let enc_at = pos + plen;
        let enc = *region.get(enc_at).ok_or_else(oob)?;
        let data_at;
        let value =
            match enc >> 6 {
                0b00..=0b10 => {
                    let (len, hdr) = match enc >> 6 {
                        0b00 => (usize::from(enc & 0x3f), 1),
                        0b01 => {
                            let b = *region.get(enc_at + 1).ok_or_else(oob)?;
                            ((usize::from(enc & 0x3f) << 8) | usize::from(b), 2)
                        }
                        _ => {
                            let b: [u8; 4] = read_array(region, enc_at + 1).ok_or_else(oob)?;
                            (u32::from_be_bytes(b) as usize, 5)
                        }
                    };
                    data_at = enc_at + hdr;
                    let data_end = data_at.checked_add(len).ok_or_else(oob)?;
                    let bytes = region.get(data_at..data_end).ok_or_else(oob)?;
                    return Ok(Entry {
                        prevlen,
                        size: data_end - pos,
                        value: PackedValue::Bytes(bytes),
                    });
                }
                _ => {
                    data_at = enc_at + 1;
                    match enc {
                        0xc0 => read_array::<2>(region, data_at)
                            .map(|b| i64::from(i16::from_le_bytes(b))),
                        0xd0 => read_array::<4>(region, data_at)
                            .map(|b| i64::from(i32::from_le_bytes(b))),
                        0xe0 => read_array::<8>(region, data_at).map(i64::from_le_bytes),
                        0xf0 => read_array::<3>(region, data_at)
                            .map(|b| sign_extend_24(u32::from_le_bytes([b[0], b[1], b[2], 0]))),
                        0xfe => read_array::<1>(region, data_at).map(|b| i64::from(b[0] as i8)),
                        0xf1..=0xfd => Some(i64::from(enc & 0x0f) - 1),
                        _ => {
                            return Err(ContainerError::new(
                                ContainerErrorKind::InvalidEncoding { byte: enc },
                                enc_at,
                            ))
                        }
                    }
                    .ok_or_else(oob)?
                }
            };
        Ok(Entry {
            prevlen,
            size: data_at + int_data_len(enc) - pos,
            value: PackedValue::Int(value),
        })
    }
}

/// Data bytes after an integer encoding byte.
fn int_data_len(enc: u8) -> usize {
    match enc {
        0xc0 => 2,
        0xd0 => 4,
        0xe0 => 8,
        0xf0 => 3,
        0xfe => 1,
        _ => 0,
    }
}

/// Builds a ziplist exactly as Redis's `ziplistPush(..., ZIPLIST_TAIL)` does.
///
/// Strings that are the canonical decimal form of an `i64` (and shorter than 32 bytes) are
/// stored as the smallest integer encoding, like Redis's `zipTryEncoding`; other strings use
/// the 6-, 14- or 32-bit length forms. `prevlen` fields use the minimal size and `zllen`
/// saturates at 65535.
///
/// Redis refuses to grow a ziplist past 1 GiB; the builder does not check, so callers that
/// can produce huge containers should watch [`size`](Self::size). Above `u32::MAX` bytes the
/// header would be wrong.
///
/// ```
/// use respsync::rdb::encoding::ziplist::{Ziplist, ZiplistBuilder};
///
/// let mut b = ZiplistBuilder::new();
/// b.push(b"hello");
/// b.push(b"-1");
/// b.push_int(1_000_000);
/// let blob = b.finish();
/// let zl = Ziplist::parse(&blob).unwrap();
/// let values: Vec<_> = zl.iter().map(|v| v.to_bytes().into_owned()).collect();
/// assert_eq!(values, [&b"hello"[..], b"-1", b"1000000"]);
/// ```
#[derive(Debug, Clone)]
pub struct ZiplistBuilder {
    buf: Vec<u8>,
    count: usize,
    last_start: usize,
    last_size: usize,
}

impl Default for ZiplistBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ZiplistBuilder {
    /// An empty ziplist.
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0; HEADER]);
        Self {
            buf,
            count: 0,
            last_start: HEADER,
            last_size: 0,
        }
    }

    /// Appends a string element (stored as an integer if Redis would).
    pub fn push(&mut self, value: &[u8]) {
        match parse_canonical_i64(value).filter(|_| value.len() < 32) {
            Some(v) => self.push_int(v),
            None => {
                self.start_entry();
                let len = value.len();
                if len <= 0x3f {
                    self.buf.push(len as u8);
                } else if len <= 0x3fff {
                    self.buf.push(0x40 | (len >> 8) as u8);
                    self.buf.push((len & 0xff) as u8);
                } else {
                    self.buf.push(0x80);
                    self.buf.extend_from_slice(&(len as u32).to_be_bytes());
                }
                self.buf.extend_from_slice(value);
                self.end_entry();
            }
        }
    }

    /// Appends an integer element, in the smallest encoding that holds it.
    pub fn push_int(&mut self, v: i64) {
        self.start_entry();
        if (0..=12).contains(&v) {
            self.buf.push(0xf1 + v as u8);
        } else if let Ok(v) = i8::try_from(v) {
            self.buf.push(0xfe);
            self.buf.push(v as u8);
        } else if let Ok(v) = i16::try_from(v) {
            self.buf.push(0xc0);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            self.buf.push(0xf0);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if let Ok(v) = i32::try_from(v) {
            self.buf.push(0xd0);
            self.buf.extend_from_slice(&v.to_le_bytes());
        } else {
            self.buf.push(0xe0);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        self.end_entry();
    }

    /// Appends an element taken from another ziplist or listpack (integers stay integers,
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

    /// Size in bytes the finished ziplist will have.
    pub fn size(&self) -> usize {
        self.buf.len() + 1
    }

    /// The finished ziplist blob.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(END);
        let total = self.buf.len() as u32;
        let tail = self.last_start as u32;
        let zllen = u16::try_from(self.count).unwrap_or(UNKNOWN_LEN);
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        self.buf[4..8].copy_from_slice(&tail.to_le_bytes());
        self.buf[8..10].copy_from_slice(&zllen.to_le_bytes());
        self.buf
    }

    fn start_entry(&mut self) {
        self.last_start = self.buf.len();
        if self.last_size < 0xfe {
            self.buf.push(self.last_size as u8);
        } else {
            self.buf.push(0xfe);
            self.buf
                .extend_from_slice(&(self.last_size as u32).to_le_bytes());
        }
    }

    fn end_entry(&mut self) {
        self.last_size = self.buf.len() - self.last_start;
        self.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Wraps raw entry bytes in a header with the right sizes.
    fn wrap(entries: &[u8], tail: u32, count: u16) -> Vec<u8> {
        let total = (HEADER + entries.len() + 1) as u32;
        let mut blob = Vec::new();
        blob.extend_from_slice(&total.to_le_bytes());
        blob.extend_from_slice(&tail.to_le_bytes());
        blob.extend_from_slice(&count.to_le_bytes());
        blob.extend_from_slice(entries);
        blob.push(END);
        blob
    }

    fn values(blob: &[u8]) -> Vec<Vec<u8>> {
        let zl = Ziplist::parse(blob).unwrap();
        let v: Vec<_> = zl.iter().map(|v| v.to_bytes().into_owned()).collect();
        assert_eq!(v.len(), zl.len());
        v
    }

    fn err(blob: &[u8]) -> ContainerError {
        Ziplist::parse(blob).unwrap_err()
    }

    #[test]
    fn every_integer_encoding() {
        let entries = [
            0x00, 0xf1, // 0 (immediate)
            0x02, 0xfd, // 12 (immediate)
            0x02, 0xfe, 0x80, // int8 -128
            0x03, 0xc0, 0x00, 0x80, // int16 -32768
            0x04, 0xf0, 0xff, 0xff, 0x7f, // int24 8388607
            0x05, 0xf0, 0x00, 0x00, 0x80, // int24 -8388608 (sign-extended)
            0x05, 0xd0, 0x00, 0x00, 0x00, 0x80, // int32 -2147483648
            0x06, 0xe0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, // int64 max
        ];
        let blob = wrap(&entries, 37, 8);
        let zl = Ziplist::parse(&blob).unwrap();
        let ints: Vec<_> = zl.iter().map(|v| v.to_i64().unwrap()).collect();
        assert_eq!(
            ints,
            [
                0,
                12,
                -128,
                -32768,
                8388607,
                -8388608,
                i64::from(i32::MIN),
                i64::MAX
            ]
        );
        assert!(zl.iter().all(|v| matches!(v, PackedValue::Int(_))));
    }

    #[test]
    fn string_lengths_are_big_endian() {
        let mut entries = vec![0x00, 0x41, 0x2c]; // 14-bit length 300, big endian
        entries.extend_from_slice(&[b'x'; 300]);
        // prevlen 303 needs the 5-byte form.
        entries.extend_from_slice(&[0xfe, 0x2f, 0x01, 0x00, 0x00]);
        entries.extend_from_slice(&[0x80, 0x00, 0x00, 0x40, 0x00]); // 32-bit length 16384, BE
        entries.extend_from_slice(&[b'y'; 16384]);
        let blob = wrap(&entries, 10 + 303, 2);
        let v = values(&blob);
        assert_eq!(v, [vec![b'x'; 300], vec![b'y'; 16384]]);

        // The builder produces exactly these bytes.
        let mut b = ZiplistBuilder::new();
        b.push(&[b'x'; 300]);
        b.push(&[b'y'; 16384]);
        assert_eq!(b.finish(), blob);
    }

    #[test]
    fn builder_picks_redis_encodings() {
        let mut b = ZiplistBuilder::new();
        for v in [
            "0",
            "12",
            "13",
            "-1",
            "127",
            "128",
            "-129",
            "32768",
            "8388608",
            "2147483648",
        ] {
            b.push(v.as_bytes());
        }
        for v in ["007", "+1", "-0", " 1", "", "9223372036854775808"] {
            b.push(v.as_bytes());
        }
        let blob = b.finish();
        let zl = Ziplist::parse(&blob).unwrap();
        let encs: Vec<u8> = {
            let mut pos = HEADER;
            let mut encs = Vec::new();
            for _ in 0..zl.len() {
                let e = Entry::decode(&blob, pos, blob.len() - 1).unwrap();
                let plen = if blob[pos] == 0xfe { 5 } else { 1 };
                encs.push(blob[pos + plen]);
                pos += e.size;
            }
            encs
        };
        assert_eq!(
            encs,
            [0xf1, 0xfd, 0xfe, 0xfe, 0xfe, 0xc0, 0xc0, 0xf0, 0xd0, 0xe0, 3, 2, 2, 2, 0, 19]
        );
        let strings: Vec<_> = zl.iter().map(|v| v.to_bytes().into_owned()).collect();
        assert_eq!(strings[10], b"007");
        assert_eq!(strings[15], b"9223372036854775808");
    }

    #[test]
    fn five_byte_prevlen_with_small_value() {
        // "a" then "b" whose prevlen (3) is stored in the 5-byte form.
        let entries = [0x00, 0x01, b'a', 0xfe, 0x03, 0x00, 0x00, 0x00, 0x01, b'b'];
        let blob = wrap(&entries, 13, 2);
        assert_eq!(values(&blob), [b"a", b"b"]);
        // The same with a wrong small value in the 5-byte form.
        let entries = [0x00, 0x01, b'a', 0xfe, 0x04, 0x00, 0x00, 0x00, 0x01, b'b'];
        let e = err(&wrap(&entries, 13, 2));
        assert_eq!(e.offset, 13);
        assert_eq!(
            e.kind,
            ContainerErrorKind::PrevlenMismatch {
                declared: 4,
                actual: 3
            }
        );
    }

    #[test]
    fn unknown_count_is_counted() {
        let entries = [0x00, 0xf2, 0x02, 0xf3, 0x02, 0xf4];
        let blob = wrap(&entries, 14, UNKNOWN_LEN);
        assert_eq!(Ziplist::parse(&blob).unwrap().len(), 3);
        assert_eq!(values(&blob), [b"1", b"2", b"3"]);
    }

    #[test]
    fn builder_saturates_count_and_parser_counts_past_it() {
        let mut b = ZiplistBuilder::new();
        for i in 0..70_000 {
            b.push_int(i % 10);
        }
        let blob = b.finish();
        assert_eq!(&blob[8..10], &[0xff, 0xff]);
        let zl = Ziplist::parse(&blob).unwrap();
        assert_eq!(zl.len(), 70_000);
        assert_eq!(zl.iter().nth(69_999), Some(PackedValue::Int(9)));
    }

    #[test]
    fn corrupt_headers() {
        let good = wrap(&[0x00, 0x01, b'a'], 10, 1);
        assert!(Ziplist::parse(&good).is_ok());

        assert_eq!(
            err(&good[..10]).kind,
            ContainerErrorKind::BlobTooShort { len: 10 }
        );
        let mut b = good.clone();
        b[0] += 1;
        assert_eq!(
            err(&b),
            ContainerError::new(
                ContainerErrorKind::TotalBytesMismatch {
                    declared: 15,
                    actual: 14
                },
                0
            )
        );
        let mut b = good.clone();
        *b.last_mut().unwrap() = 0xfe;
        assert_eq!(
            err(&b),
            ContainerError::new(ContainerErrorKind::MissingTerminator, 13)
        );
        let mut b = good.clone();
        b[4] = 0x0b; // tail points into the middle of the entry
        assert_eq!(
            err(&b),
            ContainerError::new(ContainerErrorKind::TailMismatch { declared: 11 }, 4)
        );
        let mut b = good.clone();
        b[4] = 0xff; // tail beyond the blob
        assert_eq!(
            err(&b).kind,
            ContainerErrorKind::TailMismatch { declared: 255 }
        );
        let mut b = good.clone();
        b[8] = 2;
        assert_eq!(
            err(&b),
            ContainerError::new(
                ContainerErrorKind::CountMismatch {
                    declared: 2,
                    actual: 1
                },
                8
            )
        );
    }

    #[test]
    fn corrupt_entries() {
        // String longer than the blob.
        let e = err(&wrap(&[0x00, 0x05, b'a'], 10, 1));
        assert_eq!(
            e,
            ContainerError::new(ContainerErrorKind::EntryOutOfBounds, 10)
        );
        // Entry that would swallow the end marker.
        let e = err(&wrap(&[0x00, 0x02, b'a'], 10, 1));
        assert_eq!(e.kind, ContainerErrorKind::EntryOutOfBounds);
        // Truncated integers and headers.
        for entries in [
            &[0x00, 0xc0, 0x01][..],
            &[0x00, 0xd0, 1, 2, 3],
            &[0x00, 0xe0, 1, 2, 3, 4, 5, 6, 7],
            &[0x00, 0xf0, 1, 2],
            &[0x00, 0xfe],
            &[0x00, 0x41],
            &[0x00, 0x80, 0, 0, 0],
            &[0xfe, 0, 0, 0],
        ] {
            let e = err(&wrap(entries, 10, 1));
            assert_eq!(
                e,
                ContainerError::new(ContainerErrorKind::EntryOutOfBounds, 10)
            );
        }
        // Invalid encodings.
        for byte in [0xc1, 0xcf, 0xd1, 0xdf, 0xe1, 0xef, 0xff] {
            let e = err(&wrap(&[0x00, byte, 0, 0, 0, 0, 0, 0, 0, 0], 10, 1));
            assert_eq!(
                e,
                ContainerError::new(ContainerErrorKind::InvalidEncoding { byte }, 11)
            );
        }
        // First entry with a non-zero prevlen.
        let e = err(&wrap(&[0x01, 0x01, b'a'], 10, 1));
        assert_eq!(
            e.kind,
            ContainerErrorKind::PrevlenMismatch {
                declared: 1,
                actual: 0
            }
        );
        // An end marker before the real end.
        let e = err(&wrap(&[0x00, 0x01, b'a', 0xff], 10, 1));
        assert_eq!(
            e,
            ContainerError::new(ContainerErrorKind::TrailingBytes, 13)
        );
        // A 32-bit length near u32::MAX must not overflow anything.
        let e = err(&wrap(&[0x00, 0xbf, 0xff, 0xff, 0xff, 0xff], 10, 1));
        assert_eq!(e.kind, ContainerErrorKind::EntryOutOfBounds);
    }

    #[test]
    fn empty_ziplist() {
        let b = ZiplistBuilder::new();
        assert!(b.is_empty());
        let blob = b.finish();
        assert_eq!(blob, [0x0b, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(Ziplist::parse(&blob).unwrap().iter().count(), 0);
    }

    fn element() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            (-300i64..300).prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..80),
            (0usize..20_000).prop_map(|n| vec![b'z'; n]),
            Just(b"007".to_vec()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn builder_roundtrip(elems in proptest::collection::vec(element(), 0..40)) {
            let mut b = ZiplistBuilder::new();
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
        fn arbitrary_bytes_never_panic(mut blob in proptest::collection::vec(any::<u8>(), 0..200), fix in any::<bool>()) {
            if fix && blob.len() >= 11 {
                // Make the header and terminator right so the entry walk is exercised.
                let n = blob.len() as u32;
                blob[0..4].copy_from_slice(&n.to_le_bytes());
                *blob.last_mut().unwrap() = END;
            }
            if let Ok(zl) = Ziplist::parse(&blob) {
                prop_assert_eq!(zl.iter().count(), zl.len());
            }
        }

        #[test]
        fn mutations_never_panic(elems in proptest::collection::vec(element(), 1..10), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut b = ZiplistBuilder::new();
            for e in &elems {
                b.push(e);
            }
            let mut blob = b.finish();
            let i = at.index(blob.len());
            blob[i] = byte;
            if let Ok(zl) = Ziplist::parse(&blob) {
                prop_assert_eq!(zl.iter().count(), zl.len());
            }
        }
    }
}
