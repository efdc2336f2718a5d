//! The borrowed, zero-allocation way to receive what the parser finds.
//!
//! [`Parser::parse_with`](super::Parser::parse_with) hands keys, string pieces, elements,
//! sorted-set members and hash fields to a [`Visitor`] as slices of the parser's own buffers,
//! so nothing is allocated per key or per element. Everything else (headers, AUX fields,
//! streams, modules, the end) arrives as an owned [`RdbEvent`] through [`Visitor::event`].
//! The default methods turn the borrowed callbacks into the same events
//! [`Parser::poll_event`](super::Parser::poll_event) returns, so a visitor that only
//! implements [`Visitor::event`] sees exactly the event stream.

use bytes::Bytes;

use super::event::{Expiry, KeyInfo, ObjectKind, RdbEvent};
use super::raw::RawRef;

/// A key record's start, borrowed from the parser's buffer.
///
/// ```
/// use respsync::rdb::{KeyRef, ObjectKind};
///
/// let key = KeyRef::new(0, b"k", ObjectKind::String);
/// let info = key.to_key_info();
/// assert_eq!(&info.key[..], b"k");
/// assert_eq!(info.kind, ObjectKind::String);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct KeyRef<'a> {
    /// The database selected by the last `SELECTDB` (0 before any).
    pub db: u64,
    /// The key.
    pub key: &'a [u8],
    /// Type and encoding of the value.
    pub kind: ObjectKind,
    /// Expiry set by `EXPIRETIME`/`EXPIRETIME_MS` just before the key, if any.
    pub expire: Option<Expiry>,
    /// LRU idle time in seconds (`IDLE` opcode), if stored.
    pub idle_s: Option<u64>,
    /// LFU logarithmic access counter (`FREQ` opcode), if stored.
    pub freq: Option<u8>,
    /// Absolute byte offset of the type byte of this record.
    pub offset: u64,
    /// The item count stored right after the key, if the encoding has one there (see
    /// [`KeyInfo::len`]).
    pub len: Option<u64>,
}

impl<'a> KeyRef<'a> {
    /// A key with no expiry or LRU/LFU data, at offset 0.
    pub fn new(db: u64, key: &'a [u8], kind: ObjectKind) -> Self {
        KeyRef {
            db,
            key,
            kind,
            expire: None,
            idle_s: None,
            freq: None,
            offset: 0,
            len: None,
        }
    }

    /// The owned [`KeyInfo`] that [`RdbEvent::KeyStart`] carries (copies the key).
    pub fn to_key_info(&self) -> KeyInfo {
        let mut info = KeyInfo::new(self.db, Bytes::copy_from_slice(self.key), self.kind);
        info.expire = self.expire;
        info.idle_s = self.idle_s;
        info.freq = self.freq;
        info.offset = self.offset;
        info.len = self.len;
        info
    }
}

/// Receives a parse as it happens, from [`Parser::parse_with`](super::Parser::parse_with).
///
/// Keys, string pieces, elements, sorted-set members and hash fields arrive as slices of the
/// parser's buffers, so nothing is allocated per key or element; everything else arrives as
/// an owned [`RdbEvent`] through [`Visitor::event`]. The default methods turn each borrowed
/// callback into the event [`Parser::poll_event`](super::Parser::poll_event) would return,
/// so a visitor that only implements `event` sees exactly the event stream.
///
/// Slices are only valid during the call. Integers stored in compact encodings are passed as
/// their decimal text, as in the events.
///
/// ```
/// use respsync::rdb::{KeyRef, Parser, ParserConfig, RdbEvent, Visitor};
///
/// #[derive(Default)]
/// struct Sizes {
///     keys: u64,
///     value_bytes: u64,
///     done: bool,
/// }
///
/// impl Visitor for Sizes {
///     fn event(&mut self, event: RdbEvent) {
///         self.done |= matches!(event, RdbEvent::End { .. });
///     }
///     fn key_start(&mut self, _key: KeyRef<'_>) {
///         self.keys += 1;
///     }
///     fn string_chunk(&mut self, data: &[u8]) {
///         self.value_bytes += data.len() as u64;
///     }
/// }
///
/// let file = b"REDIS0003\xfe\x00\x00\x01k\x03abc\x00\x02k2\xc0\x07\xff";
/// let mut parser = Parser::new(ParserConfig::default());
/// let mut sizes = Sizes::default();
/// parser.push(file);
/// parser.finish();
/// parser.parse_with(&mut sizes).unwrap();
/// assert!(parser.is_done() && sizes.done);
/// assert_eq!((sizes.keys, sizes.value_bytes), (2, 4)); // "abc" and "7"
/// ```
pub trait Visitor {
    /// Every event that has no borrowed callback, and by default those that have one.
    fn event(&mut self, event: RdbEvent);

    /// A key record starts ([`RdbEvent::KeyStart`]).
    fn key_start(&mut self, key: KeyRef<'_>) {
        self.event(RdbEvent::KeyStart(key.to_key_info()));
    }

    /// A piece of a string value ([`RdbEvent::StringChunk`]).
    fn string_chunk(&mut self, data: &[u8]) {
        self.event(RdbEvent::StringChunk(Bytes::copy_from_slice(data)));
    }

    /// A list element or set member ([`RdbEvent::Element`]).
    fn element(&mut self, element: &[u8]) {
        self.event(RdbEvent::Element(Bytes::copy_from_slice(element)));
    }

    /// A sorted-set member ([`RdbEvent::ZsetMember`]).
    fn zset_member(&mut self, member: &[u8], score: f64) {
        self.event(RdbEvent::ZsetMember {
            member: Bytes::copy_from_slice(member),
            score,
        });
    }

    /// A hash field ([`RdbEvent::HashField`]).
    fn hash_field(&mut self, field: &[u8], value: &[u8], expire_ms: Option<i64>) {
        self.event(RdbEvent::HashField {
            field: Bytes::copy_from_slice(field),
            value: Bytes::copy_from_slice(value),
            expire_ms,
        });
    }

    /// A value stored as one encoded string, not decoded (only with
    /// [`ParserConfig::lazy_values`](super::ParserConfig::lazy_values); [`RdbEvent::Raw`]).
    /// [`RawRef::decode`] turns it into the callbacks it replaces, on demand.
    fn raw_value(&mut self, value: RawRef<'_>) {
        self.event(RdbEvent::Raw(value.to_owned_value()));
    }

    /// The key record ends ([`RdbEvent::KeyEnd`]).
    fn key_end(&mut self) {
        self.event(RdbEvent::KeyEnd);
    }
}

/// A [`Visitor`] that sees only each record's key, handed to the closure: values are skipped
/// (with [`ParserConfig::lazy_values`](super::ParserConfig::lazy_values) on, not even decoded)
/// and every other event is dropped. For counting keys, listing them, or checking names.
///
/// ```
/// use respsync::rdb::{KeysOnly, Parser, ParserConfig};
///
/// let file = b"REDIS0003\xfe\x00\x00\x01a\x01v\x00\x01b\x01w\xff";
/// let mut names = Vec::new();
/// let mut keys = KeysOnly(|k: respsync::rdb::KeyRef<'_>| names.push(k.key.to_vec()));
/// let mut parser = Parser::new(ParserConfig::default());
/// parser.feed_with(file, &mut keys).unwrap();
/// parser.finish();
/// parser.parse_with(&mut keys).unwrap();
/// assert!(parser.is_done());
/// assert_eq!(names, [b"a".to_vec(), b"b".to_vec()]);
/// ```
pub struct KeysOnly<F>(pub F);

impl<F: FnMut(KeyRef<'_>)> Visitor for KeysOnly<F> {
    fn event(&mut self, _event: RdbEvent) {}
    fn key_start(&mut self, key: KeyRef<'_>) {
        (self.0)(key)
    }
    fn string_chunk(&mut self, _data: &[u8]) {}
    fn element(&mut self, _element: &[u8]) {}
    fn zset_member(&mut self, _member: &[u8], _score: f64) {}
    fn hash_field(&mut self, _field: &[u8], _value: &[u8], _expire_ms: Option<i64>) {}
    fn raw_value(&mut self, _value: RawRef<'_>) {}
    fn key_end(&mut self) {}
}
