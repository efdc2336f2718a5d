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
#[derive(Debug, Clone, Copy)]
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

impl<'a> IntoIterator for &Ziplist<'a> {
    type Item = PackedValue<'a>;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator over the entries of a [`Ziplist`].
#[derive(Debug, Clone)]
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
