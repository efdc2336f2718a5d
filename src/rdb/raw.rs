//! Lazy values: a value (or part of one) as it is stored, decoded only when asked.
//!
//! With [`ParserConfig::lazy_values`](super::ParserConfig::lazy_values) on, every value that
//! the file stores as one encoded string — an LZF-compressed string, an embedded container
//! (ziplist, listpack, intset, zipmap), a quicklist node, a stream node — reaches the consumer
//! as one [`RawRef`] ([`Visitor::raw_value`]) or [`RawValue`] ([`RdbEvent::Raw`]) instead of
//! the events decoding it gives. Nothing is decompressed or walked until the consumer asks:
//! [`RawRef::decoded_len`] and [`RawRef::stored`] are free, [`RawRef::count`] reads only the
//! container's header (decompressing just that prefix), and [`RawRef::decode`] hands exactly
//! the events the eager parser would have produced, errors included, to a [`Visitor`].

use std::borrow::Cow;

use bytes::Bytes;

use super::encoding::intset::Intset;
use super::encoding::listpack::Listpack;
use super::encoding::lzf;
use super::encoding::ziplist::Ziplist;
use super::error::{ContainerKind, RdbError};
use super::event::{RdbEvent, StreamId};
use super::parser::{container_err, decode_blob, decode_stream_node, Blob};
use super::visitor::Visitor;

/// What a lazy value holds, and so what decoding it produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RawKind {
    /// An LZF-compressed string value: decodes to [`RdbEvent::StringChunk`]s.
    String,
    /// An LZF-compressed list element stored alone (a quicklist plain node): one
    /// [`RdbEvent::Element`].
    Element,
    /// A list ziplist (type 10, or a node of a type-14 quicklist): elements.
    ListZiplist,
    /// A list listpack (a packed node of a type-18 quicklist): elements.
    ListListpack,
    /// An intset: set members (as decimal text).
    SetIntset,
    /// A set listpack: set members.
    SetListpack,
    /// A sorted-set ziplist: members with scores.
    ZsetZiplist,
    /// A sorted-set listpack: members with scores.
    ZsetListpack,
    /// A hash ziplist: fields.
    HashZiplist,
    /// A hash zipmap: fields.
    HashZipmap,
    /// A hash listpack: fields.
    HashListpack,
    /// A hash listpack with per-field TTLs (types 23 and 25): fields with expiries.
    HashListpackEx,
    /// A stream node's listpack: [`RdbEvent::StreamNode`] then its live entries.
    StreamNode {
        /// The node's master id (stored before the listpack).
        master_id: StreamId,
    },
}

impl RawKind {
    fn blob(self) -> Option<Blob> {
        Some(match self {
            RawKind::ListZiplist => Blob::ListZiplist,
            RawKind::ListListpack | RawKind::SetListpack => Blob::SetListpack,
            RawKind::SetIntset => Blob::SetIntset,
            RawKind::ZsetZiplist => Blob::ZsetZiplist,
            RawKind::ZsetListpack => Blob::ZsetListpack,
            RawKind::HashZiplist => Blob::HashZiplist,
            RawKind::HashZipmap => Blob::HashZipmap,
            RawKind::HashListpack => Blob::HashListpack,
            RawKind::HashListpackEx => Blob::HashListpackEx {
                min_expire_prefix: false,
            },
            RawKind::String | RawKind::Element | RawKind::StreamNode { .. } => return None,
        })
    }

    /// Entries of the container per element it yields (2 for pairs, 3 for TTL triples).
    fn entries_per_item(self) -> u64 {
        match self {
            RawKind::ZsetZiplist
            | RawKind::ZsetListpack
            | RawKind::HashZiplist
            | RawKind::HashListpack => 2,
            RawKind::HashListpackEx => 3,
            _ => 1,
        }
    }
}

/// A lazy value borrowed from the parser's input (see [lazy values](super#lazy-values)), as
/// [`Visitor::raw_value`] receives it.
///
/// ```
/// use respsync::rdb::{encoding::lzf, Parser, ParserConfig, RawKind, RawRef, RdbEvent, Visitor};
///
/// // A file with one string key whose 1000-byte value is stored LZF-compressed.
/// let value = vec![b'x'; 1000];
/// let mut packed = Vec::new();
/// assert!(lzf::compress(&value, &mut packed));
/// let mut file = b"REDIS0003\xfe\x00\x00\x01k\xc3".to_vec();
/// file.extend_from_slice(&[0x40 | (packed.len() >> 8) as u8, packed.len() as u8, 0x43, 0xe8]);
/// file.extend_from_slice(&packed);
/// file.push(0xff);
///
/// #[derive(Default)]
/// struct Sizes(Vec<(u64, usize)>, Vec<RdbEvent>);
/// impl Visitor for Sizes {
///     fn event(&mut self, event: RdbEvent) {
///         self.1.push(event);
///     }
///     fn raw_value(&mut self, raw: RawRef<'_>) {
///         assert_eq!(raw.kind(), RawKind::String);
///         // Both sizes come from the header: nothing is decompressed.
///         self.0.push((raw.decoded_len(), raw.stored().len()));
///     }
/// }
///
/// let mut config = ParserConfig::default();
/// config.lazy_values(true);
/// let mut parser = Parser::new(config);
/// let mut sizes = Sizes::default();
/// parser.feed_with(&file, &mut sizes).unwrap();
/// parser.finish();
/// parser.parse_with(&mut sizes).unwrap();
/// assert!(parser.is_done());
/// assert_eq!(sizes.0, [(1000, packed.len())]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRef<'a> {
    kind: RawKind,
    data: &'a [u8],
    ulen: u64,
    compressed: bool,
    at: u64,
    data_at: u64,
    chunk_size: usize,
}

/// A lazy value that owns its stored bytes (a zero-copy slice of input pushed with
/// [`Parser::push_bytes`](super::Parser::push_bytes)), as [`RdbEvent::Raw`] carries it.
/// [`RawValue::as_raw_ref`] gives the accessors of [`RawRef`].
///
/// ```
/// use respsync::rdb::{encoding::lzf, Parser, ParserConfig, RdbEvent};
///
/// let value = vec![b'x'; 1000];
/// let mut packed = Vec::new();
/// assert!(lzf::compress(&value, &mut packed));
/// let mut file = b"REDIS0003\xfe\x00\x00\x01k\xc3".to_vec();
/// file.extend_from_slice(&[0x40 | (packed.len() >> 8) as u8, packed.len() as u8, 0x43, 0xe8]);
/// file.extend_from_slice(&packed);
/// file.push(0xff);
///
/// let mut config = ParserConfig::default();
/// config.lazy_values(true);
/// let mut parser = Parser::new(config);
/// parser.push(&file);
/// parser.finish();
/// let mut decoded = Vec::new();
/// while let Some(event) = parser.poll_event().unwrap() {
///     if let RdbEvent::Raw(raw) = event {
///         assert_eq!(raw.as_raw_ref().decoded_len(), 1000);
///         // Decoding gives what the eager parser would have given.
///         decoded = raw.events().unwrap();
///     }
/// }
/// assert_eq!(decoded, [RdbEvent::StringChunk(value.into())]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    kind: RawKind,
    data: Bytes,
    ulen: u64,
    at: u64,
    data_at: u64,
    // u32 and next to the flag: keeps the event small (`RdbEvent` stays within 96 bytes).
    chunk_size: u32,
    compressed: bool,
}

impl<'a> RawRef<'a> {
    /// A value stored as `data`, LZF-compressed to `ulen` bytes if `compressed`. `at` is the
    /// offset container errors are reported at, `data_at` that of LZF errors.
    pub(crate) fn new(
        kind: RawKind,
        data: &'a [u8],
        lzf_len: Option<u64>,
        at: u64,
        data_at: u64,
        chunk_size: usize,
    ) -> Self {
        RawRef {
            kind,
            data,
            ulen: lzf_len.unwrap_or(data.len() as u64),
            compressed: lzf_len.is_some(),
            at,
            data_at,
            chunk_size,
        }
    }

    /// What the value holds.
    pub fn kind(&self) -> RawKind {
        self.kind
    }

    /// The bytes as stored in the file (LZF-compressed if [`RawRef::is_compressed`]).
    pub fn stored(&self) -> &'a [u8] {
        self.data
    }

    /// Whether the stored bytes are LZF-compressed.
    pub fn is_compressed(&self) -> bool {
        self.compressed
    }

    /// Length of the decompressed string or container, from the header (no decoding).
    pub fn decoded_len(&self) -> u64 {
        self.ulen
    }

    /// Absolute offset of the stored value in the file.
    pub fn offset(&self) -> u64 {
        self.at
    }

    /// The decompressed bytes: the string, or the container as Redis holds it in memory.
    /// Borrowed when the value is not compressed.
    pub fn decompressed(&self) -> Result<Cow<'a, [u8]>, RdbError> {
        if !self.compressed {
            return Ok(Cow::Borrowed(self.data));
        }
        let mut out = Vec::new();
        self.lzf(&mut out, None)?;
        Ok(Cow::Owned(out))
    }

    fn lzf(&self, out: &mut Vec<u8>, want: Option<usize>) -> Result<(), RdbError> {
        let ulen = usize::try_from(self.ulen).map_err(|_| RdbError::Corrupt {
            what: "lzf length",
            offset: self.data_at,
        })?;
        let res = match want {
            Some(w) => lzf::decompress_prefix(self.data, ulen, w, out),
            None => lzf::decompress(self.data, ulen, out),
        };
        res.map_err(|e| container_err(ContainerKind::Lzf, self.data_at, &e))
    }

    /// The number of items decoding yields: list elements, set members, sorted-set members,
    /// hash fields, live entries of a stream node; 0 for a string, 1 for an element.
    ///
    /// Read from the container's header, decompressing only its first bytes; only when the
    /// header does not hold the count (a ziplist or listpack of 65535 entries or more, a
    /// zipmap of 254 or more, a stream node) is the container decompressed and walked.
    pub fn count(&self) -> Result<u64, RdbError> {
        let header = match self.kind {
            RawKind::String => return Ok(0),
            RawKind::Element => return Ok(1),
            RawKind::ListZiplist | RawKind::ZsetZiplist | RawKind::HashZiplist => 10,
            RawKind::SetIntset => 8,
            RawKind::HashZipmap => 1,
            RawKind::StreamNode { .. } => 0,
            _ => 6,
        };
        let mut head = Vec::new();
        let head: &[u8] = if !self.compressed {
            self.data
        } else if header > 0 {
            self.lzf(&mut head, Some(header))?;
            &head
        } else {
            &[]
        };
        let per = self.kind.entries_per_item();
        let from_header = match (self.kind, head.len() >= header && header > 0) {
            (_, false) => None,
            (RawKind::ListZiplist | RawKind::ZsetZiplist | RawKind::HashZiplist, true) => {
                let n = u16::from_le_bytes([head[8], head[9]]);
                (n != u16::MAX).then_some(u64::from(n))
            }
            (RawKind::SetIntset, true) => Some(u64::from(u32::from_le_bytes([
                head[4], head[5], head[6], head[7],
            ]))),
            (RawKind::HashZipmap, true) => (head[0] < 254).then_some(u64::from(head[0])),
            (_, true) => {
                let n = u16::from_le_bytes([head[4], head[5]]);
                (n != u16::MAX).then_some(u64::from(n))
            }
        };
        if let Some(n) = from_header {
            return Ok(n / per);
        }
        // The header does not say: decode the container and count.
        let data = self.decompressed()?;
        let container = |e| container_err(ContainerKind::Listpack, self.at, &e);
        let entries = match self.kind {
            RawKind::ListZiplist | RawKind::ZsetZiplist | RawKind::HashZiplist => {
                Ziplist::parse(&data)
                    .map_err(|e| container_err(ContainerKind::Ziplist, self.at, &e))?
                    .iter()
                    .count() as u64
            }
            RawKind::SetIntset => Intset::parse(&data)
                .map_err(|e| container_err(ContainerKind::Intset, self.at, &e))?
                .len() as u64,
            RawKind::StreamNode { .. } => {
                let lp = Listpack::parse(&data).map_err(container)?;
                return lp
                    .iter()
                    .next()
                    .and_then(|v| v.to_i64())
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or(RdbError::Corrupt {
                        what: "stream node header",
                        offset: self.at,
                    });
            }
            RawKind::HashZipmap => {
                let mut n = CountFields(0);
                decode_blob(Blob::HashZipmap, &data, self.at, &mut n)?;
                return Ok(n.0);
            }
            _ => Listpack::parse(&data).map_err(container)?.iter().count() as u64,
        };
        Ok(entries / per)
    }

    /// Decodes the value into `visitor`: exactly the callbacks and events the parser gives
    /// with lazy values off (string chunks of the configured size, elements, members, fields,
    /// stream nodes and entries), and the same error, at the same offset, if it is corrupt.
    pub fn decode<V: Visitor>(&self, visitor: &mut V) -> Result<(), RdbError> {
        let data = self.decompressed()?;
        match self.kind {
            RawKind::String => {
                for piece in data.chunks(self.chunk_size.max(1)) {
                    visitor.string_chunk(piece);
                }
                Ok(())
            }
            RawKind::Element => {
                visitor.element(&data);
                Ok(())
            }
            RawKind::StreamNode { master_id } => {
                decode_stream_node(master_id, &data, self.at, visitor)
            }
            kind => match kind.blob() {
                Some(blob) => decode_blob(blob, &data, self.at, visitor),
                None => Ok(()),
            },
        }
    }

    /// The events decoding gives, collected (see [`RawRef::decode`]).
    pub fn events(&self) -> Result<Vec<RdbEvent>, RdbError> {
        let mut events = Events(Vec::new());
        self.decode(&mut events)?;
        Ok(events.0)
    }

    /// An owned copy, with the stored bytes in `data` (which must equal [`RawRef::stored`]).
    pub(crate) fn to_value(self, data: Bytes) -> RawValue {
        RawValue {
            kind: self.kind,
            data,
            ulen: self.ulen,
            compressed: self.compressed,
            at: self.at,
            data_at: self.data_at,
            chunk_size: u32::try_from(self.chunk_size).unwrap_or(u32::MAX),
        }
    }

    /// An owned copy (copies the stored bytes).
    pub fn to_owned_value(&self) -> RawValue {
        self.to_value(Bytes::copy_from_slice(self.data))
    }
}

impl RawValue {
    /// The accessors: sizes, count, decoding.
    pub fn as_raw_ref(&self) -> RawRef<'_> {
        RawRef {
            kind: self.kind,
            data: &self.data,
            ulen: self.ulen,
            compressed: self.compressed,
            at: self.at,
            data_at: self.data_at,
            chunk_size: self.chunk_size as usize,
        }
    }

    /// The stored bytes (a slice of the pushed input where possible).
    pub fn stored(&self) -> &Bytes {
        &self.data
    }

    /// The events decoding gives (see [`RawRef::decode`]).
    pub fn events(&self) -> Result<Vec<RdbEvent>, RdbError> {
        self.as_raw_ref().events()
    }
}

struct Events(Vec<RdbEvent>);

impl Visitor for Events {
    fn event(&mut self, event: RdbEvent) {
        self.0.push(event);
    }
}

struct CountFields(u64);

impl Visitor for CountFields {
    fn event(&mut self, _event: RdbEvent) {}
    fn hash_field(&mut self, _field: &[u8], _value: &[u8], _expire_ms: Option<i64>) {
        self.0 += 1;
    }
}
