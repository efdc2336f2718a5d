//! The resumable push parser.
//!
//! Design: input is appended to one buffer; the parser advances in *steps*, each of which
//! parses one small atomic item (a record header, one collection element, one container
//! blob, one chunk of a long string) from the front of the buffer. A step that lacks bytes
//! consumes nothing and leaves the state unchanged, so parsing resumes exactly where it
//! stopped when more input arrives. Limits are checked as soon as a length is read, before
//! waiting for (or buffering) the bytes it announces.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use super::config::ParserConfig;
use super::encoding::crc64::Crc64;
use super::encoding::intset::Intset;
use super::encoding::listpack::Listpack;
use super::encoding::ziplist::Ziplist;
use super::encoding::zipmap::Zipmap;
use super::encoding::{lzf, PackedValue};
use super::error::{ContainerKind, Limit, RdbError};
use super::event::{
    Checksum, Expiry, KeyInfo, Magic, ModuleId, ObjectKind, PendingEntry, PreGaFunction, RdbEvent,
    StreamConsumerInfo, StreamGroupInfo, StreamId, StreamMeta,
};
use super::raw::{RawKind, RawRef};
use super::visitor::{KeyRef, Visitor};

// Opcodes (Redis src/rdb.h).
const OP_SLOT_IMPORT_OR_KEY_META: u8 = 0xF3;
const OP_SLOT_INFO: u8 = 0xF4;
const OP_FUNCTION2: u8 = 0xF5;
const OP_FUNCTION_PRE_GA: u8 = 0xF6;
const OP_MODULE_AUX: u8 = 0xF7;
const OP_IDLE: u8 = 0xF8;
const OP_FREQ: u8 = 0xF9;
const OP_AUX: u8 = 0xFA;
const OP_RESIZEDB: u8 = 0xFB;
const OP_EXPIRETIME_MS: u8 = 0xFC;
const OP_EXPIRETIME: u8 = 0xFD;
const OP_SELECTDB: u8 = 0xFE;
const OP_EOF: u8 = 0xFF;

// Module value opcodes (Redis src/rdb.h, RDB_MODULE_OPCODE_*).
const MODULE_OP_EOF: u64 = 0;
const MODULE_OP_SINT: u64 = 1;
const MODULE_OP_UINT: u64 = 2;
const MODULE_OP_FLOAT: u64 = 3;
const MODULE_OP_DOUBLE: u64 = 4;
const MODULE_OP_STRING: u64 = 5;

// Quicklist 2 node containers (Redis src/quicklist.h).
const QUICKLIST_NODE_PLAIN: u64 = 1;
const QUICKLIST_NODE_PACKED: u64 = 2;

// Stream entry flags (Redis src/t_stream.c).
const STREAM_ITEM_FLAG_DELETED: i64 = 1;
const STREAM_ITEM_FLAG_SAMEFIELDS: i64 = 2;

/// Why a step stopped: more input is needed, or the input is bad. The error is boxed so that
/// every `R<T>` of the hot path stays small enough to be returned in registers.
enum Stop {
    Need,
    Err(Box<RdbError>),
}

impl From<RdbError> for Stop {
    #[cold]
    fn from(e: RdbError) -> Self {
        Stop::Err(Box::new(e))
    }
}

type R<T> = Result<T, Stop>;

/// A read cursor over the unconsumed input of one step.
struct Cur<'a> {
    b: &'a [u8],
    p: usize,
    base: u64,
}

/// The header of an RDB `string`.
enum StrHead {
    Raw(u64),
    Int(i64),
    Lzf { clen: u64, ulen: u64 },
}

/// A `string` as stored: LZF data not decompressed, anything else as [`Str`].
enum Stored<'a> {
    Str(Str<'a>),
    Lzf {
        data: &'a [u8],
        ulen: u64,
        data_at: u64,
    },
}

/// A decoded `string`: borrowed from the input, an integer, or decompressed.
enum Str<'a> {
    Slice(&'a [u8]),
    Int(i64),
    Owned(Vec<u8>),
}

impl Str<'_> {
    fn into_bytes(self) -> Bytes {
        match self {
            Str::Slice(s) => Bytes::copy_from_slice(s),
            Str::Int(i) => int_bytes(i),
            Str::Owned(v) => Bytes::from(v),
        }
    }

    fn with_slice<T>(&self, f: impl FnOnce(&[u8]) -> T) -> T {
        match self {
            Str::Slice(s) => f(s),
            Str::Owned(v) => f(v),
            Str::Int(i) => f(int_text(*i, &mut [0u8; 20])),
        }
    }
}

fn int_bytes(i: i64) -> Bytes {
    Bytes::from(i.to_string())
}

fn packed_bytes(v: PackedValue<'_>) -> Bytes {
    match v {
        PackedValue::Bytes(b) => Bytes::copy_from_slice(b),
        PackedValue::Int(i) => int_bytes(i),
    }
}

impl<'a> Cur<'a> {
    fn off(&self) -> u64 {
        self.base + self.p as u64
    }

    fn u8(&mut self) -> R<u8> {
        let b = *self.b.get(self.p).ok_or(Stop::Need)?;
        self.p += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> R<&'a [u8]> {
        let avail = self.b.len() - self.p;
        if (avail as u64) < n {
            return Err(Stop::Need);
        }
        // n <= avail, so it fits in usize.
        let n = n as usize;
        let s = &self.b[self.p..self.p + n];
        self.p += n;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> R<[u8; N]> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn i64le(&mut self) -> R<i64> {
        Ok(i64::from_le_bytes(self.arr()?))
    }

    /// A plain `len`.
    #[inline]
    fn len(&mut self) -> R<u64> {
        // The 6- and 14-bit forms (most lengths) inline; the others out of line.
        if let Some(&b0) = self.b.get(self.p) {
            if b0 < 0x40 {
                self.p += 1;
                return Ok(u64::from(b0));
            }
            if b0 < 0x80 {
                if let Some(&b1) = self.b.get(self.p + 1) {
                    self.p += 2;
                    return Ok((u64::from(b0 & 0x3F) << 8) | u64::from(b1));
                }
            }
        }
        self.len_slow()
    }

    #[inline(never)]
    fn len_slow(&mut self) -> R<u64> {
        let at = self.off();
        let b0 = self.u8()?;
        match b0 >> 6 {
            0 => Ok(u64::from(b0 & 0x3F)),
            1 => Ok((u64::from(b0 & 0x3F) << 8) | u64::from(self.u8()?)),
            _ => match b0 {
                0x80 => Ok(u64::from(u32::from_be_bytes(self.arr()?))),
                0x81 => Ok(u64::from_be_bytes(self.arr()?)),
                _ => Err(RdbError::InvalidLength {
                    byte: b0,
                    offset: at,
                }
                .into()),
            },
        }
    }

    /// A `len` that counts elements, checked against the collection limit.
    fn count(&mut self, cfg: &ParserConfig) -> R<u64> {
        let at = self.off();
        let n = self.len()?;
        if n > cfg.max_collection_len {
            return Err(RdbError::LimitExceeded {
                limit: Limit::CollectionLen,
                len: n,
                max: cfg.max_collection_len,
                offset: at,
            }
            .into());
        }
        Ok(n)
    }

    #[inline]
    fn str_head(&mut self) -> R<StrHead> {
        let b0 = *self.b.get(self.p).ok_or(Stop::Need)?;
        if b0 >> 6 != 3 {
            return Ok(StrHead::Raw(self.len()?));
        }
        let at = self.off();
        self.p += 1;
        match b0 & 0x3F {
            0 => Ok(StrHead::Int(i64::from(self.u8()? as i8))),
            1 => Ok(StrHead::Int(i64::from(i16::from_le_bytes(self.arr()?)))),
            2 => Ok(StrHead::Int(i64::from(i32::from_le_bytes(self.arr()?)))),
            3 => {
                let clen = self.len()?;
                let ulen = self.len()?;
                Ok(StrHead::Lzf { clen, ulen })
            }
            _ => Err(RdbError::InvalidStringEncoding {
                byte: b0,
                offset: at,
            }
            .into()),
        }
    }

    /// A whole `string`, at most `max` bytes long (decompressed).
    #[inline]
    fn string(&mut self, max: u64, limit: Limit) -> R<Str<'a>> {
        // Fast path: a short raw string (6-bit length) that is all there.
        if let Some(&b0) = self.b.get(self.p) {
            let len = usize::from(b0);
            if b0 < 0x40 && len as u64 <= max {
                if let Some(s) = self.b.get(self.p + 1..self.p + 1 + len) {
                    self.p += 1 + len;
                    return Ok(Str::Slice(s));
                }
            }
        }
        self.string_slow(max, limit)
    }

    fn string_slow(&mut self, max: u64, limit: Limit) -> R<Str<'a>> {
        let at = self.off();
        let too_long = |len: u64| {
            Stop::from(RdbError::LimitExceeded {
                limit,
                len,
                max,
                offset: at,
            })
        };
        match self.str_head()? {
            StrHead::Raw(len) => {
                if len > max {
                    return Err(too_long(len));
                }
                Ok(Str::Slice(self.take(len)?))
            }
            StrHead::Int(i) => Ok(Str::Int(i)),
            StrHead::Lzf { clen, ulen } => {
                if ulen > max {
                    return Err(too_long(ulen));
                }
                if clen > max {
                    return Err(too_long(clen));
                }
                let data_at = self.off();
                let input = self.take(clen)?;
                Ok(Str::Owned(decompress(input, ulen, data_at)?))
            }
        }
    }

    /// A `string` at most `max` bytes long (decompressed), LZF data left compressed.
    fn stored(&mut self, max: u64, limit: Limit) -> R<Stored<'a>> {
        if self.b.get(self.p) != Some(&0xC3) {
            return Ok(Stored::Str(self.string(max, limit)?));
        }
        let at = self.off();
        let StrHead::Lzf { clen, ulen } = self.str_head()? else {
            return Err(corrupt("lzf string", at).into());
        };
        for len in [ulen, clen] {
            if len > max {
                return Err(RdbError::LimitExceeded {
                    limit,
                    len,
                    max,
                    offset: at,
                }
                .into());
            }
        }
        let data_at = self.off();
        let data = self.take(clen)?;
        Ok(Stored::Lzf {
            data,
            ulen,
            data_at,
        })
    }

    /// Skips a `string` without decoding it (module opcode streams); bounded by `max`.
    fn skip_string(&mut self, max: u64) -> R<()> {
        let at = self.off();
        let len = match self.str_head()? {
            StrHead::Raw(len) => len,
            StrHead::Int(_) => return Ok(()),
            StrHead::Lzf { clen, .. } => clen,
        };
        if len > max {
            return Err(RdbError::LimitExceeded {
                limit: Limit::StringLen,
                len,
                max,
                offset: at,
            }
            .into());
        }
        self.take(len)?;
        Ok(())
    }
}

fn decompress(input: &[u8], ulen: u64, at: u64) -> Result<Vec<u8>, RdbError> {
    let mut out = Vec::new();
    decompress_into(input, ulen, at, &mut out)?;
    Ok(out)
}

/// Appends the decompressed string to `out`. `lzf::decompress` refuses, before reserving, a
/// declared length the input could not produce; the caller bounded `ulen` by its limit.
fn decompress_into(input: &[u8], ulen: u64, at: u64, out: &mut Vec<u8>) -> Result<(), RdbError> {
    let ulen = usize::try_from(ulen).map_err(|_| RdbError::Corrupt {
        what: "lzf length",
        offset: at,
    })?;
    lzf::decompress(input, ulen, out).map_err(|e| container_err(ContainerKind::Lzf, at, &e))
}

/// The decimal text of `i`, written into `buf`.
fn int_text(i: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut pos = buf.len();
    let mut n = i.unsigned_abs();
    loop {
        pos -= 1;
        // n % 10 < 10, so the cast is exact.
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..]
}

pub(super) fn container_err(
    container: ContainerKind,
    at: u64,
    e: &super::encoding::ContainerError,
) -> RdbError {
    RdbError::Container {
        container,
        offset: at + e.offset as u64,
        kind: e.kind.clone(),
    }
}

fn corrupt(what: &'static str, offset: u64) -> RdbError {
    RdbError::Corrupt { what, offset }
}

/// Element layouts of the plain (one record per element) collections.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Items {
    ListOrSet,
    Zset,
    Zset2,
    Hash,
    HashMeta { min_expire: i64 },
    HashMetaPreGa,
    HashValkey2,
}

/// Values whose record stores an item count right after the key.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Counted {
    Items(Items),
    Quicklist { v2: bool },
}

/// The layout of `kind` if its record stores an item count right after the key.
fn counted_items(kind: ObjectKind) -> Option<Counted> {
    use ObjectKind as K;
    Some(match kind {
        K::List | K::Set => Counted::Items(Items::ListOrSet),
        K::Zset => Counted::Items(Items::Zset),
        K::Zset2 => Counted::Items(Items::Zset2),
        K::Hash => Counted::Items(Items::Hash),
        K::HashMetadataPreGa => Counted::Items(Items::HashMetaPreGa),
        K::HashValkey2 => Counted::Items(Items::HashValkey2),
        K::ListQuicklist => Counted::Quicklist { v2: false },
        K::ListQuicklist2 => Counted::Quicklist { v2: true },
        _ => return None,
    })
}

/// Values stored as one embedded container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Blob {
    ListZiplist,
    SetIntset,
    ZsetZiplist,
    HashZiplist,
    HashZipmap,
    HashListpack,
    ZsetListpack,
    SetListpack,
    HashListpackEx { min_expire_prefix: bool },
}

/// Stream layout generations (types 15, 19, 21).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum StreamVer {
    V1,
    V2,
    V3,
    V4,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Header,
    Record,
    /// After the key: the value's head (count, prefix, ...).
    ValueHead(ObjectKind),
    StrRaw {
        left: u64,
    },
    Items {
        kind: Items,
        left: u64,
    },
    Quicklist {
        v2: bool,
        left: u64,
    },
    StreamNodes {
        v: StreamVer,
        left: u64,
    },
    StreamMeta {
        v: StreamVer,
    },
    StreamGroup {
        v: StreamVer,
        groups_left: u64,
    },
    StreamPel {
        v: StreamVer,
        groups_left: u64,
        left: u64,
    },
    StreamConsumerCount {
        v: StreamVer,
        groups_left: u64,
    },
    StreamConsumer {
        v: StreamVer,
        groups_left: u64,
        left: u64,
    },
    StreamConsumerPel {
        v: StreamVer,
        groups_left: u64,
        consumers_left: u64,
        left: u64,
    },
    ModuleOps {
        owner: ModuleOwner,
    },
    KeyMetaClass {
        left: u64,
    },
    StreamIdmpHead,
    StreamIdmpProducer {
        left: u64,
    },
    StreamIdmpEntry {
        producers_left: u64,
        left: u64,
    },
    StreamIdmpStats,
    Trailer,
    Done,
}

/// Whose module opcode stream is being read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ModuleOwner {
    Key,
    Aux,
    KeyMeta { classes_left: u64 },
}

/// Key prefixes waiting for the next key record.
#[derive(Debug, Default, Clone)]
struct Prefix {
    expire: Option<Expiry>,
    idle_s: Option<u64>,
    freq: Option<u8>,
}

/// The parse state proper, split from the input buffer so a step can borrow both.
struct Machine {
    cfg: ParserConfig,
    state: State,
    magic: Magic,
    version: u32,
    db: u64,
    prefix: Prefix,
    crc: Crc64,
    /// Reused output of LZF string values (shrunk after a big one).
    scratch: Vec<u8>,
    /// `cfg.nonstandard_opcodes` as a lookup table (checked for every record).
    nonstandard: [bool; 256],
}

/// Where the parser sends what it finds: a [`Visitor`], plus how to turn a slice of the input
/// into owned [`Bytes`] (a zero-copy slice of the pushed input where it lies in one).
trait Sink: Visitor {
    /// The pushed input the next slices come from (`None`: the parser's own copy).
    fn set_src(&mut self, _src: Option<&Bytes>) {}
    /// Owned bytes equal to `data`.
    fn bytes(&mut self, data: &[u8]) -> Bytes {
        Bytes::copy_from_slice(data)
    }
    /// Whether to keep stepping (`false` once an event is waiting for `poll_event`).
    fn more(&self) -> bool {
        true
    }
}

/// A caller's [`Visitor`] as a [`Sink`].
struct Borrowing<'v, V>(&'v mut V);

impl<V: Visitor> Visitor for Borrowing<'_, V> {
    fn event(&mut self, event: RdbEvent) {
        self.0.event(event)
    }
    fn key_start(&mut self, key: KeyRef<'_>) {
        self.0.key_start(key)
    }
    fn string_chunk(&mut self, data: &[u8]) {
        self.0.string_chunk(data)
    }
    fn element(&mut self, element: &[u8]) {
        self.0.element(element)
    }
    fn zset_member(&mut self, member: &[u8], score: f64) {
        self.0.zset_member(member, score)
    }
    fn hash_field(&mut self, field: &[u8], value: &[u8], expire_ms: Option<i64>) {
        self.0.hash_field(field, value, expire_ms)
    }
    fn raw_value(&mut self, value: RawRef<'_>) {
        self.0.raw_value(value)
    }
    fn key_end(&mut self) {
        self.0.key_end()
    }
}

impl<V: Visitor> Sink for Borrowing<'_, V> {}

/// Size of the blocks that copied event bytes (integers as text, decompressed data, items
/// that crossed a push boundary) are carved from.
const ARENA_BLOCK: usize = 64 << 10;

/// `poll_event` parses ahead until this many events wait.
const QUEUE_BATCH: usize = 64;

/// Events produced and not yet returned by [`Parser::poll_event`].
#[derive(Default)]
struct Queue {
    /// The first event of a step (most steps emit one), then the rest in order.
    ready: Option<RdbEvent>,
    queue: VecDeque<RdbEvent>,
    /// The pushed input being parsed, if the parser reads it in place.
    src: Option<Bytes>,
    /// Reused storage for bytes that are not a slice of `src`: split off per event, and
    /// reclaimed by `BytesMut::reserve` once the events holding it are dropped.
    arena: BytesMut,
}

impl Queue {
    fn pop(&mut self) -> Option<RdbEvent> {
        self.ready.take().or_else(|| self.queue.pop_front())
    }

    fn is_empty(&self) -> bool {
        self.ready.is_none() && self.queue.is_empty()
    }
}

impl Sink for Queue {
    fn set_src(&mut self, src: Option<&Bytes>) {
        match (src, &self.src) {
            (Some(new), Some(old)) if new.as_ptr() == old.as_ptr() && new.len() == old.len() => {}
            _ => self.src = src.cloned(),
        }
    }

    #[inline]
    fn bytes(&mut self, data: &[u8]) -> Bytes {
        if let Some(src) = &self.src {
            let start = (data.as_ptr() as usize).wrapping_sub(src.as_ptr() as usize);
            if start <= src.len() && data.len() <= src.len() - start {
                return src.slice(start..start + data.len());
            }
        }
        if self.arena.capacity() - self.arena.len() < data.len() {
            self.arena.reserve(data.len().max(ARENA_BLOCK));
        }
        self.arena.extend_from_slice(data);
        self.arena.split().freeze()
    }

    /// Steps run back to back until a batch of events waits (amortizes the per-call cost).
    fn more(&self) -> bool {
        self.queue.len() < QUEUE_BATCH
    }
}

impl Visitor for Queue {
    fn event(&mut self, ev: RdbEvent) {
        if self.is_empty() {
            self.ready = Some(ev);
        } else {
            self.queue.push_back(ev);
        }
    }

    fn key_start(&mut self, key: KeyRef<'_>) {
        let mut info = KeyInfo::new(key.db, self.bytes(key.key), key.kind);
        info.expire = key.expire;
        info.idle_s = key.idle_s;
        info.freq = key.freq;
        info.offset = key.offset;
        info.len = key.len;
        self.event(RdbEvent::KeyStart(info));
    }

    fn string_chunk(&mut self, data: &[u8]) {
        let data = self.bytes(data);
        self.event(RdbEvent::StringChunk(data));
    }

    fn element(&mut self, element: &[u8]) {
        let element = self.bytes(element);
        self.event(RdbEvent::Element(element));
    }

    fn zset_member(&mut self, member: &[u8], score: f64) {
        let member = self.bytes(member);
        self.event(RdbEvent::ZsetMember { member, score });
    }

    fn hash_field(&mut self, field: &[u8], value: &[u8], expire_ms: Option<i64>) {
        let field = self.bytes(field);
        let value = self.bytes(value);
        self.event(RdbEvent::HashField {
            field,
            value,
            expire_ms,
        });
    }

    fn raw_value(&mut self, value: RawRef<'_>) {
        let data = self.bytes(value.stored());
        self.event(RdbEvent::Raw(value.to_value(data)));
    }
}

/// The parser's input: its own buffer (`buf`, the "carry": what was pushed as slices, or
/// the incomplete item at the end of pushed [`Bytes`]) followed by pushed [`Bytes`] that are
/// parsed in place.
struct Input {
    buf: Vec<u8>,
    pos: usize,
    /// `buf[..crc_pos]` is already in the CRC; the rest of the consumed bytes are added in
    /// bulk (per-step updates on a few bytes each would be far slower).
    crc_pos: usize,
    /// Absolute offset of `buf[0]`; `segs[0][seg_pos]` follows `buf`'s last byte.
    base: u64,
    /// Pushed `Bytes` not yet parsed, in order; the first from `seg_pos` on.
    segs: VecDeque<Bytes>,
    seg_pos: usize,
    /// `segs[0][..seg_crc]` is in the CRC (or was moved to `buf`).
    seg_crc: usize,
    /// The last `tail` bytes of `buf` are a copy of `segs[0][seg_pos - tail..seg_pos]`:
    /// once the unparsed part of `buf` lies within them, parsing goes back to `segs[0]`.
    tail: usize,
    eof: bool,
    failed: Option<RdbError>,
}

/// Compact the buffer once this many consumed bytes sit at its front.
const COMPACT_AT: usize = 64 << 10;
/// An empty input buffer larger than this (and than twice the next push) is shrunk.
const SHRINK_ABOVE: usize = 4 << 20;
/// The smallest piece of pushed `Bytes` copied to complete an item that crossed a push.
const CARRY_PIECE: usize = 4096;

impl Input {
    /// Adds the consumed bytes of `buf` not yet in the CRC.
    fn update_crc(&mut self, crc: &mut Crc64) {
        if self.crc_pos < self.pos {
            crc.update(&self.buf[self.crc_pos..self.pos]);
            self.crc_pos = self.pos;
        }
    }

    /// Adds the consumed bytes of `segs[0]` not yet in the CRC.
    fn update_seg_crc(&mut self, crc: &mut Crc64) {
        if let Some(front) = self.segs.front() {
            if self.seg_crc < self.seg_pos {
                crc.update(&front[self.seg_crc..self.seg_pos]);
            }
        }
        self.seg_crc = self.seg_pos;
    }

    /// Drops the front segment once it is used up.
    fn pop_used_seg(&mut self) {
        if self.segs.front().is_some_and(|f| self.seg_pos >= f.len()) {
            self.segs.pop_front();
            self.seg_pos = 0;
            self.seg_crc = 0;
            self.tail = 0;
        }
    }

    /// Appends to `buf`, first dropping or compacting what was consumed.
    fn append(&mut self, data: &[u8], crc: &mut Crc64) {
        self.update_crc(crc);
        if self.pos == self.buf.len() {
            self.base += self.pos as u64;
            self.buf.clear();
            self.pos = 0;
            // Give back the memory of a past big item (a long element or container).
            if self.buf.capacity() > SHRINK_ABOVE.max(2 * data.len()) {
                self.buf.shrink_to(data.len());
            }
        } else if self.pos >= COMPACT_AT && self.pos * 2 >= self.buf.len() {
            self.base += self.pos as u64;
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.crc_pos = self.pos;
        self.buf.extend_from_slice(data);
    }

    /// Moves everything pushed into `buf` (after the end of the file, for `remaining`).
    fn settle(&mut self, crc: &mut Crc64) {
        self.update_seg_crc(crc);
        while let Some(seg) = self.segs.pop_front() {
            let from = std::mem::take(&mut self.seg_pos).min(seg.len());
            self.append(&seg[from..], crc);
        }
        self.seg_crc = 0;
        self.tail = 0;
    }

    fn buffered(&self) -> usize {
        let segs: usize = self.segs.iter().map(Bytes::len).sum();
        self.buf.len() - self.pos + segs - self.seg_pos
    }
}

/// Runs steps over one view of the input until one stops; returns the bytes the complete
/// steps used and why it stopped (`None`: the state needs the CRC, or `sink` is full).
fn run_steps<S: Sink>(m: &mut Machine, sink: &mut S, c: &mut Cur<'_>) -> (usize, Option<Stop>) {
    let mut done = 0;
    loop {
        match m.step(sink, c) {
            Ok(()) => {
                done = c.p;
                if matches!(m.state, State::Trailer | State::Done) || !sink.more() {
                    return (done, None);
                }
            }
            Err(stop) => return (done, Some(stop)),
        }
    }
}

/// Parses what the input holds into `sink`, until more input is needed, the file is done, an
/// error stops it, or `sink` wants no more.
fn drive<S: Sink>(i: &mut Input, m: &mut Machine, sink: &mut S) -> Result<(), RdbError> {
    loop {
        if let Some(e) = &i.failed {
            return Err(e.clone());
        }
        match m.state {
            State::Done => {
                if !i.segs.is_empty() {
                    i.settle(&mut m.crc);
                }
                return Ok(());
            }
            State::Trailer => {
                i.update_crc(&mut m.crc);
                i.update_seg_crc(&mut m.crc);
            }
            _ => {}
        }
        if !sink.more() {
            return Ok(());
        }
        if i.pos < i.buf.len() || i.segs.is_empty() {
            // From the carry buffer.
            sink.set_src(None);
            let mut c = Cur {
                b: &i.buf[i.pos..],
                p: 0,
                base: i.base + i.pos as u64,
            };
            let (done, stop) = run_steps(m, sink, &mut c);
            i.pos += done;
            match stop {
                None => {}
                Some(Stop::Need) => {
                    let Some(front) = i.segs.front() else {
                        if i.eof {
                            i.failed = Some(RdbError::UnexpectedEof {
                                offset: i.base + i.buf.len() as u64,
                            });
                            continue;
                        }
                        return Ok(());
                    };
                    // Complete the item from the next pushed piece, in growing pieces.
                    let front = front.clone();
                    let rest = i.buf.len() - i.pos;
                    let take = (front.len() - i.seg_pos).min(rest.max(CARRY_PIECE));
                    i.update_seg_crc(&mut m.crc);
                    i.append(&front[i.seg_pos..i.seg_pos + take], &mut m.crc);
                    i.seg_pos += take;
                    i.seg_crc = i.seg_pos;
                    i.tail += take;
                    i.pop_used_seg();
                    continue;
                }
                Some(Stop::Err(e)) => {
                    i.failed = Some(*e);
                    continue;
                }
            }
            let rem = i.buf.len() - i.pos;
            if i.tail > 0 && rem <= i.tail && !i.segs.is_empty() {
                // What is left is a copy of the front piece's bytes: parse them in place.
                i.update_crc(&mut m.crc);
                i.base += i.pos as u64;
                i.buf.clear();
                i.pos = 0;
                i.crc_pos = 0;
                i.seg_pos -= rem;
                i.seg_crc = i.seg_pos;
                i.tail = 0;
            }
        } else {
            // In place, from the front pushed piece; the carry buffer is used up.
            if !i.buf.is_empty() {
                i.update_crc(&mut m.crc);
                i.base += i.buf.len() as u64;
                i.buf.clear();
                i.pos = 0;
                i.crc_pos = 0;
                if i.buf.capacity() > SHRINK_ABOVE {
                    i.buf = Vec::new();
                }
            }
            i.tail = 0;
            let front = &i.segs[0];
            sink.set_src(Some(front));
            let mut c = Cur {
                b: &front[i.seg_pos..],
                p: 0,
                base: i.base,
            };
            let (done, stop) = run_steps(m, sink, &mut c);
            i.seg_pos += done;
            i.base += done as u64;
            match stop {
                None => {}
                Some(Stop::Need) => {
                    // An incomplete item at the end: copy it to the carry buffer.
                    i.update_seg_crc(&mut m.crc);
                    let front = i.segs.pop_front().unwrap_or_default();
                    let from = i.seg_pos.min(front.len());
                    i.seg_pos = 0;
                    i.seg_crc = 0;
                    i.append(&front[from..], &mut m.crc);
                }
                Some(Stop::Err(e)) => i.failed = Some(*e),
            }
            if i.segs.front().is_some_and(|f| i.seg_pos >= f.len()) {
                i.update_seg_crc(&mut m.crc);
                i.pop_used_seg();
            }
        }
    }
}

/// A resumable, bounded-memory RDB push parser.
///
/// Push input in chunks of any size with [`Parser::push_bytes`] (or [`Parser::push`]), then
/// drain events with [`Parser::poll_event`] until it returns `Ok(None)`; repeat. Call
/// [`Parser::finish`] when the input has ended, so that a truncated file becomes an error
/// instead of a wait.
///
/// Input pushed as [`Bytes`] is parsed in place: keys, string pieces and elements stored raw
/// in the file are delivered as slices of it, so events cost no allocation per key. Only an
/// item that crosses the end of a pushed piece, integers (as text) and decompressed data are
/// copied, into reused blocks.
///
/// The parser buffers only what it needs to finish the current item: one key, element,
/// container blob (a ziplist or listpack counts as one element), or a chunk of a long
/// string. Event boundaries never depend on how the input was split.
///
/// ```
/// use respsync::rdb::{Checksum, Parser, ParserConfig, RdbEvent};
///
/// // "REDIS0003", SELECTDB 0, string key "k" = "v", EOF (version 3: no checksum).
/// let file = b"REDIS0003\xfe\x00\x00\x01k\x01v\xff";
/// let mut parser = Parser::new(ParserConfig::default());
/// let mut events = Vec::new();
/// for byte in file.chunks(1) {
///     parser.push(byte);
///     while let Some(event) = parser.poll_event().unwrap() {
///         events.push(event);
///     }
/// }
/// parser.finish();
/// assert!(parser.poll_event().unwrap().is_none());
/// assert!(parser.is_done());
/// assert_eq!(events.len(), 6); // Header, SelectDb, KeyStart, StringChunk, KeyEnd, End
/// assert_eq!(events[3], RdbEvent::StringChunk("v".into()));
/// assert_eq!(events[5], RdbEvent::End { checksum: Checksum::Absent });
/// ```
pub struct Parser {
    i: Input,
    out: Queue,
    m: Machine,
}

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser")
            .field("offset", &self.offset())
            .field("buffered", &self.buffered())
            .field("state", &self.m.state)
            .finish_non_exhaustive()
    }
}

impl Parser {
    /// A parser with the given limits.
    pub fn new(config: ParserConfig) -> Self {
        let mut nonstandard = [false; 256];
        for &op in &config.nonstandard_opcodes {
            nonstandard[usize::from(op)] = true;
        }
        Parser {
            i: Input {
                buf: Vec::new(),
                pos: 0,
                crc_pos: 0,
                base: 0,
                segs: VecDeque::new(),
                seg_pos: 0,
                seg_crc: 0,
                tail: 0,
                eof: false,
                failed: None,
            },
            out: Queue::default(),
            m: Machine {
                cfg: config,
                state: State::Header,
                magic: Magic::Redis,
                version: 0,
                db: 0,
                prefix: Prefix::default(),
                crc: Crc64::new(),
                scratch: Vec::new(),
                nonstandard,
            },
        }
    }

    /// Appends input (copied into the parser's buffer). Drain [`Parser::poll_event`] before
    /// pushing much more: the parser keeps everything pushed and not yet parsed.
    /// [`Parser::push_bytes`] avoids the copy.
    pub fn push(&mut self, data: &[u8]) {
        if self.i.segs.is_empty() {
            self.i.append(data, &mut self.m.crc);
        } else if !data.is_empty() {
            self.i.segs.push_back(Bytes::copy_from_slice(data));
        }
    }

    /// Appends input without copying it: the events [`Parser::poll_event`] returns hold
    /// slices of `data` (so it stays allocated while they live). Drain the events before
    /// pushing much more.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use respsync::rdb::{Parser, ParserConfig, RdbEvent};
    ///
    /// let file = Bytes::from_static(b"REDIS0003\xfe\x00\x00\x01k\x05hello\xff");
    /// let mut parser = Parser::new(ParserConfig::default());
    /// parser.push_bytes(file.clone());
    /// parser.finish();
    /// let mut chunk = None;
    /// while let Some(event) = parser.poll_event().unwrap() {
    ///     if let RdbEvent::StringChunk(data) = event {
    ///         chunk = Some(data);
    ///     }
    /// }
    /// let chunk = chunk.unwrap();
    /// assert_eq!(&chunk[..], b"hello");
    /// // The value is the file's own bytes, not a copy.
    /// assert_eq!(chunk.as_ptr(), file[15..].as_ptr());
    /// ```
    pub fn push_bytes(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        if self.m.state == State::Done {
            self.i.append(&data, &mut self.m.crc);
        } else {
            self.i.segs.push_back(data);
        }
    }

    /// Declares the end of input: from now on, a file that is not complete is an
    /// [`RdbError::UnexpectedEof`].
    pub fn finish(&mut self) {
        self.i.eof = true;
    }

    /// The next event, `Ok(None)` if more input is needed (or the file is done), or the error
    /// that stopped the parse. Errors are sticky.
    pub fn poll_event(&mut self) -> Result<Option<RdbEvent>, RdbError> {
        if let Some(ev) = self.out.pop() {
            return Ok(Some(ev));
        }
        let res = drive(&mut self.i, &mut self.m, &mut self.out);
        // Events of a step that then failed come before the error.
        match self.out.pop() {
            Some(ev) => Ok(Some(ev)),
            None => res.map(|()| None),
        }
    }

    /// Parses everything buffered, handing what it finds to `visitor` (see [`Visitor`]):
    /// keys, string pieces and elements as borrowed slices, with no allocation per key or
    /// element; everything else as [`RdbEvent`]s. Returns when more input is needed or the
    /// file is done ([`Parser::is_done`]); errors are sticky, as with [`Parser::poll_event`].
    ///
    /// The visitor sees the same sequence [`Parser::poll_event`] would return, and the two
    /// can be mixed: events already produced for `poll_event` are delivered first.
    ///
    /// ```
    /// use respsync::rdb::{Parser, ParserConfig, RdbEvent, Visitor};
    ///
    /// struct Count(usize);
    /// impl Visitor for Count {
    ///     fn event(&mut self, _event: RdbEvent) {
    ///         self.0 += 1;
    ///     }
    /// }
    ///
    /// let file = b"REDIS0003\xfe\x00\x00\x01k\x01v\xff";
    /// let mut parser = Parser::new(ParserConfig::default());
    /// let mut count = Count(0);
    /// for piece in file.chunks(4) {
    ///     parser.push(piece);
    ///     parser.parse_with(&mut count).unwrap();
    /// }
    /// parser.finish();
    /// parser.parse_with(&mut count).unwrap();
    /// assert!(parser.is_done());
    /// assert_eq!(count.0, 6); // Header, SelectDb, KeyStart, StringChunk, KeyEnd, End
    /// ```
    pub fn parse_with<V: Visitor>(&mut self, visitor: &mut V) -> Result<(), RdbError> {
        while let Some(ev) = self.out.pop() {
            visitor.event(ev);
        }
        drive(&mut self.i, &mut self.m, &mut Borrowing(visitor))
    }

    /// [`Parser::push`] then [`Parser::parse_with`] in one call, without copying: when
    /// nothing is buffered, `data` is parsed where it lies and only an incomplete item at its
    /// end is kept for the next call. The fastest way to parse a file already in memory or
    /// read in large pieces.
    ///
    /// ```
    /// use respsync::rdb::{Parser, ParserConfig, RdbEvent, Visitor};
    ///
    /// #[derive(Default)]
    /// struct Keys(Vec<Vec<u8>>);
    /// impl Visitor for Keys {
    ///     fn event(&mut self, _event: RdbEvent) {}
    ///     fn key_start(&mut self, key: respsync::rdb::KeyRef<'_>) {
    ///         self.0.push(key.key.to_vec());
    ///     }
    /// }
    ///
    /// let file = b"REDIS0003\xfe\x00\x00\x01a\x01v\x00\x01b\x01w\xff";
    /// let mut parser = Parser::new(ParserConfig::default());
    /// let mut keys = Keys::default();
    /// for piece in file.chunks(5) {
    ///     parser.feed_with(piece, &mut keys).unwrap();
    /// }
    /// parser.finish();
    /// parser.parse_with(&mut keys).unwrap();
    /// assert!(parser.is_done());
    /// assert_eq!(keys.0, [b"a".to_vec(), b"b".to_vec()]);
    /// ```
    pub fn feed_with<V: Visitor>(
        &mut self,
        mut data: &[u8],
        visitor: &mut V,
    ) -> Result<(), RdbError> {
        if !self.i.segs.is_empty() {
            // Pushed `Bytes` come first (parsing them leaves none, or only after the end).
            self.parse_with(visitor)?;
        }
        if self.i.failed.is_some() || self.m.state == State::Done {
            self.push(data);
            return self.parse_with(visitor);
        }
        if self.i.pos < self.i.buf.len() {
            // An item is incomplete: append `data` in growing pieces until it is done, then
            // continue from `data` itself rather than copying all of it.
            let mut used = 0;
            loop {
                let take =
                    (data.len() - used).min((self.i.buf.len() - self.i.pos).max(CARRY_PIECE));
                self.push(&data[used..used + take]);
                used += take;
                self.parse_with(visitor)?;
                let rem = self.i.buf.len() - self.i.pos;
                if self.m.state == State::Done || (used == data.len() && rem > 0) {
                    self.push(&data[used..]);
                    return Ok(());
                }
                if rem <= used {
                    // What is left unparsed is the end of `data[..used]`: un-push it.
                    self.i.buf.truncate(self.i.pos);
                    data = &data[used - rem..];
                    break;
                }
            }
        }
        while let Some(ev) = self.out.pop() {
            visitor.event(ev);
        }
        // Nothing buffered: `data` is the input, starting at `self.offset()`.
        self.i.update_crc(&mut self.m.crc);
        let start = self.i.base + self.i.pos as u64;
        let (mut done, mut crc_done) = (0usize, 0usize);
        let mut sink = Borrowing(visitor);
        while self.m.state != State::Done {
            if self.m.state == State::Trailer {
                self.m.crc.update(&data[crc_done..done]);
                crc_done = done;
            }
            let mut c = Cur {
                b: &data[done..],
                p: 0,
                base: start + done as u64,
            };
            let (stepped, stop) = run_steps(&mut self.m, &mut sink, &mut c);
            done += stepped;
            match stop {
                None => {}
                Some(Stop::Need) => break,
                Some(Stop::Err(e)) => {
                    self.i.failed = Some(*e);
                    break;
                }
            }
        }
        self.m.crc.update(&data[crc_done..done]);
        // Keep the rest (an incomplete item, or what follows the file) as if pushed.
        self.i.base = start + done as u64;
        self.i.buf.clear();
        self.i.pos = 0;
        self.i.crc_pos = 0;
        self.push(&data[done..]);
        self.parse_with(visitor)
    }

    /// Whether the whole file, checksum included, has been parsed.
    pub fn is_done(&self) -> bool {
        self.m.state == State::Done && self.out.is_empty()
    }

    /// Absolute offset of the first byte not yet parsed.
    pub fn offset(&self) -> u64 {
        self.i.base + self.i.pos as u64
    }

    /// After the end of the file: the bytes pushed after it (e.g. the AOF part of an AOF
    /// file with an RDB preamble). Before, the part of the unparsed input the parser holds
    /// in its own buffer.
    pub fn remaining(&self) -> &[u8] {
        &self.i.buf[self.i.pos..]
    }

    /// Number of bytes pushed but not yet parsed.
    pub fn buffered(&self) -> usize {
        self.i.buffered()
    }

    /// Bytes of the current string value still to come after the events returned so far
    /// (0 outside a string value). With the first [`RdbEvent::StringChunk`] this gives the
    /// value's length before the rest arrives, e.g. to copy a long value through.
    ///
    /// ```
    /// use respsync::rdb::{Parser, ParserConfig, RdbEvent};
    ///
    /// let mut config = ParserConfig::default();
    /// config.chunk_size(2);
    /// let mut parser = Parser::new(config);
    /// parser.push(b"REDIS0003\xfe\x00\x00\x01k\x05hello\xff");
    /// while let Some(event) = parser.poll_event().unwrap() {
    ///     if event == RdbEvent::StringChunk("he".into()) {
    ///         assert_eq!(parser.string_remaining(), 3);
    ///     }
    /// }
    /// ```
    pub fn string_remaining(&self) -> u64 {
        let mut queued = 0u64;
        for ev in self.out.ready.iter().chain(self.out.queue.iter()) {
            match ev {
                RdbEvent::StringChunk(c) => queued += c.len() as u64,
                // The value ends among the queued events: the parser is past it.
                RdbEvent::KeyEnd => return queued,
                _ => {}
            }
        }
        match self.m.state {
            State::StrRaw { left } => queued + left,
            _ => queued,
        }
    }

    /// The magic and version from the header, once it has been parsed.
    pub fn header(&self) -> Option<(Magic, u32)> {
        (self.m.version != 0).then_some((self.m.magic, self.m.version))
    }
}

impl Machine {
    /// Delivers a whole string value as chunks of the configured size.
    fn emit_chunks<S: Sink>(&self, sink: &mut S, data: &[u8]) {
        for piece in data.chunks(self.cfg.chunk_size) {
            sink.string_chunk(piece);
        }
    }

    fn key_end<S: Sink>(&mut self, sink: &mut S) {
        sink.key_end();
        self.state = State::Record;
    }

    fn string<'a>(&self, c: &mut Cur<'a>) -> R<Str<'a>> {
        c.string(self.cfg.max_string_len, Limit::StringLen)
    }

    fn bytes(&self, c: &mut Cur<'_>) -> R<Bytes> {
        Ok(self.string(c)?.into_bytes())
    }

    fn step<S: Sink>(&mut self, sink: &mut S, c: &mut Cur<'_>) -> R<()> {
        match self.state {
            State::Header => self.header(sink, c),
            State::Record => self.record(sink, c),
            State::ValueHead(kind) => self.value_head(sink, c, kind),
            State::StrRaw { left } => {
                let n = left.min(self.cfg.chunk_size as u64);
                let data = c.take(n)?;
                sink.string_chunk(data);
                if left == n {
                    self.key_end(sink);
                } else {
                    self.state = State::StrRaw { left: left - n };
                }
                Ok(())
            }
            State::Items { kind, left } => self.item(sink, c, kind, left),
            State::Quicklist { v2, left } => self.quicklist_node(sink, c, v2, left),
            State::StreamNodes { v, left } => self.stream_node(sink, c, v, left),
            State::StreamMeta { v } => self.stream_meta(sink, c, v),
            State::StreamGroup { v, groups_left } => self.stream_group(sink, c, v, groups_left),
            State::StreamPel {
                v,
                groups_left,
                left,
            } => {
                let id = StreamId::from_be_bytes(c.arr()?);
                let delivery_time_ms = c.i64le()?;
                let delivery_count = c.len()?;
                sink.event(RdbEvent::StreamPending(PendingEntry {
                    id,
                    delivery_time_ms,
                    delivery_count,
                }));
                self.state = if left > 1 {
                    State::StreamPel {
                        v,
                        groups_left,
                        left: left - 1,
                    }
                } else {
                    State::StreamConsumerCount { v, groups_left }
                };
                Ok(())
            }
            State::StreamConsumerCount { v, groups_left } => {
                let n = c.count(&self.cfg)?;
                if n == 0 {
                    self.group_done(sink, v, groups_left);
                } else {
                    self.state = State::StreamConsumer {
                        v,
                        groups_left,
                        left: n,
                    };
                }
                Ok(())
            }
            State::StreamConsumer {
                v,
                groups_left,
                left,
            } => self.stream_consumer(sink, c, v, groups_left, left),
            State::StreamConsumerPel {
                v,
                groups_left,
                consumers_left,
                left,
            } => {
                let id = StreamId::from_be_bytes(c.arr()?);
                sink.event(RdbEvent::StreamConsumerPending(id));
                if left > 1 {
                    self.state = State::StreamConsumerPel {
                        v,
                        groups_left,
                        consumers_left,
                        left: left - 1,
                    };
                } else {
                    self.consumer_done(sink, v, groups_left, consumers_left);
                }
                Ok(())
            }
            State::ModuleOps { owner } => self.module_op(sink, c, owner),
            State::KeyMetaClass { left } => {
                let class_spec: [u8; 4] = c.arr()?;
                sink.event(RdbEvent::KeyMeta { class_spec });
                self.state = State::ModuleOps {
                    owner: ModuleOwner::KeyMeta {
                        classes_left: left - 1,
                    },
                };
                Ok(())
            }
            State::StreamIdmpHead => {
                let duration = c.len()?;
                let max_entries = c.len()?;
                let producers = c.count(&self.cfg)?;
                sink.event(RdbEvent::StreamIdmp {
                    duration,
                    max_entries,
                    producers,
                });
                self.state = if producers == 0 {
                    State::StreamIdmpStats
                } else {
                    State::StreamIdmpProducer { left: producers }
                };
                Ok(())
            }
            State::StreamIdmpProducer { left } => {
                let pid = self.bytes(c)?;
                let entries = c.count(&self.cfg)?;
                sink.event(RdbEvent::StreamIdmpProducer { pid, entries });
                self.state = if entries > 0 {
                    State::StreamIdmpEntry {
                        producers_left: left,
                        left: entries,
                    }
                } else if left > 1 {
                    State::StreamIdmpProducer { left: left - 1 }
                } else {
                    State::StreamIdmpStats
                };
                Ok(())
            }
            State::StreamIdmpEntry {
                producers_left,
                left,
            } => {
                let iid = self.bytes(c)?;
                let id = StreamId {
                    ms: c.len()?,
                    seq: c.len()?,
                };
                sink.event(RdbEvent::StreamIdmpEntry { iid, id });
                self.state = if left > 1 {
                    State::StreamIdmpEntry {
                        producers_left,
                        left: left - 1,
                    }
                } else if producers_left > 1 {
                    State::StreamIdmpProducer {
                        left: producers_left - 1,
                    }
                } else {
                    State::StreamIdmpStats
                };
                Ok(())
            }
            State::StreamIdmpStats => {
                let added = c.len()?;
                let duplicates = c.len()?;
                sink.event(RdbEvent::StreamIdmpStats { added, duplicates });
                self.key_end(sink);
                Ok(())
            }
            State::Trailer => {
                let at = c.off();
                let stored = u64::from_le_bytes(c.arr()?);
                let computed = self.crc.value();
                let checksum = if self.cfg.danger_skip_checksum {
                    Checksum::Skipped(computed)
                } else if stored == 0 {
                    Checksum::Disabled
                } else if stored == computed {
                    Checksum::Verified(stored)
                } else {
                    return Err(RdbError::ChecksumMismatch {
                        stored,
                        computed,
                        offset: at,
                    }
                    .into());
                };
                sink.event(RdbEvent::End { checksum });
                self.state = State::Done;
                Ok(())
            }
            State::Done => Err(Stop::Need),
        }
    }

    fn header<S: Sink>(&mut self, sink: &mut S, c: &mut Cur<'_>) -> R<()> {
        let h: [u8; 9] = c.arr()?;
        let (magic, digits) = if &h[..5] == b"REDIS" {
            (Magic::Redis, &h[5..])
        } else if &h[..6] == b"VALKEY" {
            (Magic::Valkey, &h[6..])
        } else {
            return Err(RdbError::BadMagic.into());
        };
        let mut version = 0u32;
        for &d in digits {
            if !d.is_ascii_digit() {
                return Err(RdbError::BadMagic.into());
            }
            version = version * 10 + u32::from(d - b'0');
        }
        let newest = magic.newest_version();
        if version == 0 || (version > newest && !self.cfg.allow_newer_versions) {
            return Err(RdbError::UnsupportedVersion {
                version,
                magic,
                newest,
            }
            .into());
        }
        self.magic = magic;
        self.version = version;
        sink.event(RdbEvent::Header { magic, version });
        self.state = State::Record;
        Ok(())
    }

    fn record<S: Sink>(&mut self, sink: &mut S, c: &mut Cur<'_>) -> R<()> {
        let at = c.off();
        let op = c.u8()?;
        match op {
            OP_EOF => {
                if self.magic == Magic::Valkey || self.version >= 5 {
                    self.state = State::Trailer;
                } else {
                    sink.event(RdbEvent::End {
                        checksum: Checksum::Absent,
                    });
                    self.state = State::Done;
                }
            }
            OP_SELECTDB => {
                let db = c.len()?;
                self.db = db;
                sink.event(RdbEvent::SelectDb { db });
            }
            OP_EXPIRETIME => {
                let s = i32::from_le_bytes(c.arr()?);
                self.prefix.expire = Some(Expiry::Seconds(s));
            }
            OP_EXPIRETIME_MS => {
                let ms = c.i64le()?;
                self.prefix.expire = Some(Expiry::Milliseconds(ms));
            }
            OP_RESIZEDB => {
                let keys = c.len()?;
                let expires = c.len()?;
                sink.event(RdbEvent::ResizeDb { keys, expires });
            }
            OP_AUX => {
                let name = self.bytes(c)?;
                let value = self.bytes(c)?;
                sink.event(RdbEvent::Aux { name, value });
            }
            OP_FREQ => {
                let f = c.u8()?;
                self.prefix.freq = Some(f);
            }
            OP_IDLE => {
                let idle = c.len()?;
                self.prefix.idle_s = Some(idle);
            }
            OP_MODULE_AUX => {
                let module = ModuleId(c.len()?);
                let when_at = c.off();
                let when_op = c.len()?;
                if when_op != MODULE_OP_UINT {
                    return Err(corrupt("module aux header", when_at).into());
                }
                let when = c.len()?;
                sink.event(RdbEvent::ModuleAux { module, when });
                self.state = State::ModuleOps {
                    owner: ModuleOwner::Aux,
                };
            }
            OP_FUNCTION_PRE_GA => {
                let name = self.bytes(c)?;
                let engine = self.bytes(c)?;
                let has_at = c.off();
                let description = match c.len()? {
                    0 => None,
                    1 => Some(self.bytes(c)?),
                    _ => return Err(corrupt("function description flag", has_at).into()),
                };
                let code = self.bytes(c)?;
                sink.event(RdbEvent::FunctionPreGa(Box::new(PreGaFunction {
                    name,
                    engine,
                    description,
                    code,
                })));
            }
            OP_FUNCTION2 => {
                let code = self.bytes(c)?;
                sink.event(RdbEvent::Function { code });
            }
            OP_SLOT_INFO => {
                let slot = c.len()?;
                let keys = c.len()?;
                let expires = c.len()?;
                sink.event(RdbEvent::SlotInfo {
                    slot,
                    keys,
                    expires,
                });
            }
            OP_SLOT_IMPORT_OR_KEY_META if self.magic == Magic::Redis && self.version >= 13 => {
                // KEY_META: class count, then per class a 4-byte spec and an opcode stream.
                let n = c.count(&self.cfg)?;
                if n > 0 {
                    self.state = State::KeyMetaClass { left: n };
                }
            }
            OP_SLOT_IMPORT_OR_KEY_META => {
                return Err(RdbError::UnsupportedOpcode {
                    opcode: op,
                    offset: at,
                }
                .into());
            }
            _ if self.nonstandard[usize::from(op)] => {
                let value = c.len()?;
                sink.event(RdbEvent::NonStandardOpcode { opcode: op, value });
            }
            _ => {
                let kind =
                    ObjectKind::from_type_byte(op, self.magic).ok_or(RdbError::UnknownType {
                        type_byte: op,
                        offset: at,
                    })?;
                if kind == ObjectKind::ModulePreGa {
                    return Err(RdbError::ModulePreGa { offset: at }.into());
                }
                let key = self.string(c)?;
                // The item count that follows the key, read before the key is reported so
                // that `KeyRef::len` can carry it (a step cut short here is simply redone).
                let items = counted_items(kind);
                let len = match items {
                    Some(_) => Some(c.count(&self.cfg)?),
                    None => None,
                };
                let prefix = std::mem::take(&mut self.prefix);
                let db = self.db;
                key.with_slice(|key| {
                    sink.key_start(KeyRef {
                        db,
                        key,
                        kind,
                        expire: prefix.expire,
                        idle_s: prefix.idle_s,
                        freq: prefix.freq,
                        offset: at,
                        len,
                    })
                });
                if let (Some(items), Some(n)) = (items, len) {
                    self.state = match items {
                        _ if n == 0 => {
                            self.key_end(sink);
                            return Ok(());
                        }
                        Counted::Items(kind) => State::Items { kind, left: n },
                        Counted::Quicklist { v2 } => State::Quicklist { v2, left: n },
                    };
                    return Ok(());
                }
                self.state = State::ValueHead(kind);
                if kind == ObjectKind::String {
                    // Fast path: the value in the same step, when its head is all there
                    // (otherwise the key alone is this step, as for other kinds).
                    let key_end = c.p;
                    match self.value_head(sink, c, kind) {
                        Err(Stop::Need) => c.p = key_end,
                        r => return r,
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts a value: reads what precedes its elements.
    fn value_head<S: Sink>(&mut self, sink: &mut S, c: &mut Cur<'_>, kind: ObjectKind) -> R<()> {
        use ObjectKind as K;
        let items = |kind: Items| -> Option<Items> { Some(kind) };
        let collection = match kind {
            K::String => {
                let at = c.off();
                match c.str_head()? {
                    StrHead::Raw(len) => {
                        if len > self.cfg.max_string_len {
                            return Err(RdbError::LimitExceeded {
                                limit: Limit::StringLen,
                                len,
                                max: self.cfg.max_string_len,
                                offset: at,
                            }
                            .into());
                        }
                        let avail = (c.b.len() - c.p) as u64;
                        if len == 0 {
                            self.key_end(sink);
                        } else if len <= self.cfg.chunk_size as u64 && len <= avail {
                            // All there and one chunk long: deliver it in this step.
                            let data = c.take(len)?;
                            sink.string_chunk(data);
                            self.key_end(sink);
                        } else {
                            self.state = State::StrRaw { left: len };
                        }
                    }
                    StrHead::Int(i) => {
                        let mut buf = [0u8; 20];
                        self.emit_chunks(sink, int_text(i, &mut buf));
                        self.key_end(sink);
                    }
                    StrHead::Lzf { clen, ulen } => {
                        let max = self.cfg.max_string_len;
                        if ulen > max || clen > max {
                            return Err(RdbError::LimitExceeded {
                                limit: Limit::StringLen,
                                len: if ulen > max { ulen } else { clen },
                                max,
                                offset: at,
                            }
                            .into());
                        }
                        let data_at = c.off();
                        let input = c.take(clen)?;
                        if self.cfg.lazy_values {
                            let raw = RawRef::new(
                                RawKind::String,
                                input,
                                Some(ulen),
                                at,
                                data_at,
                                self.cfg.chunk_size,
                            );
                            sink.raw_value(raw);
                            self.key_end(sink);
                            return Ok(());
                        }
                        let mut out = std::mem::take(&mut self.scratch);
                        out.clear();
                        let res = decompress_into(input, ulen, data_at, &mut out);
                        if res.is_ok() {
                            self.emit_chunks(sink, &out);
                        }
                        if out.capacity() > SHRINK_ABOVE {
                            out = Vec::new();
                        }
                        self.scratch = out;
                        res?;
                        self.key_end(sink);
                    }
                }
                return Ok(());
            }
            K::List | K::Set => items(Items::ListOrSet),
            K::Zset => items(Items::Zset),
            K::Zset2 => items(Items::Zset2),
            K::Hash => items(Items::Hash),
            K::HashMetadataPreGa => items(Items::HashMetaPreGa),
            K::HashValkey2 => items(Items::HashValkey2),
            K::HashMetadata => {
                let min_expire = c.i64le()?;
                items(Items::HashMeta { min_expire })
            }
            K::ListZiplist => return self.blob(sink, c, Blob::ListZiplist),
            K::SetIntset => return self.blob(sink, c, Blob::SetIntset),
            K::ZsetZiplist => return self.blob(sink, c, Blob::ZsetZiplist),
            K::HashZiplist => return self.blob(sink, c, Blob::HashZiplist),
            K::HashZipmap => return self.blob(sink, c, Blob::HashZipmap),
            K::HashListpack => return self.blob(sink, c, Blob::HashListpack),
            K::ZsetListpack => return self.blob(sink, c, Blob::ZsetListpack),
            K::SetListpack => return self.blob(sink, c, Blob::SetListpack),
            K::HashListpackEx => {
                return self.blob(
                    sink,
                    c,
                    Blob::HashListpackEx {
                        min_expire_prefix: true,
                    },
                )
            }
            K::HashListpackExPreGa => {
                return self.blob(
                    sink,
                    c,
                    Blob::HashListpackEx {
                        min_expire_prefix: false,
                    },
                )
            }
            K::ListQuicklist | K::ListQuicklist2 => {
                let n = c.count(&self.cfg)?;
                let v2 = kind == K::ListQuicklist2;
                if n == 0 {
                    self.key_end(sink);
                } else {
                    self.state = State::Quicklist { v2, left: n };
                }
                return Ok(());
            }
            K::StreamListpacks
            | K::StreamListpacks2
            | K::StreamListpacks3
            | K::StreamListpacks4 => {
                let v = match kind {
                    K::StreamListpacks => StreamVer::V1,
                    K::StreamListpacks2 => StreamVer::V2,
                    K::StreamListpacks3 => StreamVer::V3,
                    _ => StreamVer::V4,
                };
                let n = c.count(&self.cfg)?;
                self.state = if n == 0 {
                    State::StreamMeta { v }
                } else {
                    State::StreamNodes { v, left: n }
                };
                return Ok(());
            }
            K::Module2 => {
                let id = ModuleId(c.len()?);
                sink.event(RdbEvent::Module { id });
                self.state = State::ModuleOps {
                    owner: ModuleOwner::Key,
                };
                return Ok(());
            }
            K::ModulePreGa => {
                // Rejected in `record` before the key is read; unreachable in practice.
                return Err(corrupt("module value", c.off()).into());
            }
        };
        let Some(kind) = collection else {
            return Ok(());
        };
        let n = c.count(&self.cfg)?;
        if n == 0 {
            self.key_end(sink);
        } else {
            self.state = State::Items { kind, left: n };
        }
        Ok(())
    }

    fn item<S: Sink>(&mut self, sink: &mut S, c: &mut Cur<'_>, kind: Items, left: u64) -> R<()> {
        match kind {
            Items::ListOrSet => {
                let e = self.string(c)?;
                e.with_slice(|e| sink.element(e));
            }
            Items::Zset => {
                let member = self.string(c)?;
                let at = c.off();
                let score = match c.u8()? {
                    253 => return Err(corrupt("zset score (nan)", at).into()),
                    254 => f64::INFINITY,
                    255 => f64::NEG_INFINITY,
                    n => {
                        let text = c.take(u64::from(n))?;
                        parse_score(text).ok_or(corrupt("zset score", at))?
                    }
                };
                member.with_slice(|m| sink.zset_member(m, score));
            }
            Items::Zset2 => {
                let member = self.string(c)?;
                let at = c.off();
                let score = f64::from_le_bytes(c.arr()?);
                if score.is_nan() {
                    return Err(corrupt("zset score (nan)", at).into());
                }
                member.with_slice(|m| sink.zset_member(m, score));
            }
            Items::Hash => {
                let field = self.string(c)?;
                let value = self.string(c)?;
                hash_field(sink, &field, &value, None);
            }
            Items::HashMeta { min_expire } => {
                let at = c.off();
                let ttl = c.len()?;
                let field = self.string(c)?;
                let value = self.string(c)?;
                let expire_ms = if ttl == 0 {
                    None
                } else {
                    let t = i64::try_from(ttl)
                        .ok()
                        .and_then(|t| t.checked_add(min_expire))
                        .and_then(|t| t.checked_sub(1))
                        .ok_or(corrupt("hash field ttl", at))?;
                    Some(t)
                };
                hash_field(sink, &field, &value, expire_ms);
            }
            Items::HashMetaPreGa => {
                let at = c.off();
                let t = c.len()?;
                let field = self.string(c)?;
                let value = self.string(c)?;
                let expire_ms = if t == 0 {
                    None
                } else {
                    Some(i64::try_from(t).map_err(|_| corrupt("hash field ttl", at))?)
                };
                hash_field(sink, &field, &value, expire_ms);
            }
            Items::HashValkey2 => {
                let field = self.string(c)?;
                let value = self.string(c)?;
                let t = c.i64le()?;
                hash_field(sink, &field, &value, (t != -1).then_some(t));
            }
        }
        if left > 1 {
            self.state = State::Items {
                kind,
                left: left - 1,
            };
        } else {
            self.key_end(sink);
        }
        Ok(())
    }

    /// Reads a container blob (bounded by the blob limit).
    fn blob_string<'a>(&self, c: &mut Cur<'a>) -> R<(Str<'a>, u64)> {
        let at = c.off();
        let s = c.string(self.cfg.max_blob_len, Limit::BlobLen)?;
        // Offsets inside a raw blob map to the file; inside LZF data, to the string start.
        let at = match &s {
            Str::Slice(data) => c.off() - data.len() as u64,
            _ => at,
        };
        Ok((s, at))
    }

    fn blob<S: Sink>(&mut self, sink: &mut S, c: &mut Cur<'_>, kind: Blob) -> R<()> {
        if let Blob::HashListpackEx {
            min_expire_prefix: true,
        } = kind
        {
            // The smallest field TTL, a hint Redis derives again from the fields: skipped.
            c.i64le()?;
        }
        let raw = match kind {
            Blob::ListZiplist => RawKind::ListZiplist,
            Blob::SetIntset => RawKind::SetIntset,
            Blob::ZsetZiplist => RawKind::ZsetZiplist,
            Blob::HashZiplist => RawKind::HashZiplist,
            Blob::HashZipmap => RawKind::HashZipmap,
            Blob::HashListpack => RawKind::HashListpack,
            Blob::ZsetListpack => RawKind::ZsetListpack,
            Blob::SetListpack => RawKind::SetListpack,
            Blob::HashListpackEx { .. } => RawKind::HashListpackEx,
        };
        self.blob_value(sink, c, raw, |data, at, sink| {
            decode_blob(kind, data, at, sink)
        })?;
        self.key_end(sink);
        Ok(())
    }

    /// Reads a container blob and decodes it into `sink`, or with lazy values hands it over
    /// undecoded as `raw` (a blob stored as an integer is always decoded, into its error).
    fn blob_value<S: Sink>(
        &self,
        sink: &mut S,
        c: &mut Cur<'_>,
        raw: RawKind,
        decode: impl FnOnce(&[u8], u64, &mut S) -> Result<(), RdbError>,
    ) -> R<()> {
        if !self.cfg.lazy_values {
            let (s, at) = self.blob_string(c)?;
            return Ok(s.with_slice(|data| decode(data, at, sink))?);
        }
        let at = c.off();
        let chunk = self.cfg.chunk_size;
        match c.stored(self.cfg.max_blob_len, Limit::BlobLen)? {
            Stored::Lzf {
                data,
                ulen,
                data_at,
            } => sink.raw_value(RawRef::new(raw, data, Some(ulen), at, data_at, chunk)),
            Stored::Str(Str::Slice(data)) => {
                let at = c.off() - data.len() as u64;
                sink.raw_value(RawRef::new(raw, data, None, at, at, chunk));
            }
            Stored::Str(s) => s.with_slice(|data| decode(data, at, sink))?,
        }
        Ok(())
    }

    fn quicklist_node<S: Sink>(
        &mut self,
        sink: &mut S,
        c: &mut Cur<'_>,
        v2: bool,
        left: u64,
    ) -> R<()> {
        if v2 {
            let at = c.off();
            match c.len()? {
                QUICKLIST_NODE_PLAIN if self.cfg.lazy_values => {
                    let at = c.off();
                    match c.stored(self.cfg.max_string_len, Limit::StringLen)? {
                        Stored::Lzf {
                            data,
                            ulen,
                            data_at,
                        } => sink.raw_value(RawRef::new(
                            RawKind::Element,
                            data,
                            Some(ulen),
                            at,
                            data_at,
                            self.cfg.chunk_size,
                        )),
                        Stored::Str(e) => e.with_slice(|e| sink.element(e)),
                    }
                }
                QUICKLIST_NODE_PLAIN => {
                    let e = self.string(c)?;
                    e.with_slice(|e| sink.element(e));
                }
                QUICKLIST_NODE_PACKED => {
                    self.blob_value(sink, c, RawKind::ListListpack, |data, at, sink| {
                        decode_blob(Blob::SetListpack, data, at, sink)
                    })?;
                }
                _ => return Err(corrupt("quicklist node container", at).into()),
            }
        } else {
            self.blob_value(sink, c, RawKind::ListZiplist, |data, at, sink| {
                decode_blob(Blob::ListZiplist, data, at, sink)
            })?;
        }
        if left > 1 {
            self.state = State::Quicklist { v2, left: left - 1 };
        } else {
            self.key_end(sink);
        }
        Ok(())
    }

    fn stream_node<S: Sink>(
        &mut self,
        sink: &mut S,
        c: &mut Cur<'_>,
        v: StreamVer,
        left: u64,
    ) -> R<()> {
        let key_at = c.off();
        let key = self.string(c)?;
        let master = key.with_slice(|k| <[u8; 16]>::try_from(k).ok());
        let master = master.ok_or(corrupt("stream node key", key_at))?;
        let master = StreamId::from_be_bytes(master);
        self.blob_value(
            sink,
            c,
            RawKind::StreamNode { master_id: master },
            |data, at, sink| decode_stream_node(master, data, at, sink),
        )?;
        self.state = if left > 1 {
            State::StreamNodes { v, left: left - 1 }
        } else {
            State::StreamMeta { v }
        };
        Ok(())
    }

    fn stream_meta<S: Sink>(&mut self, sink: &mut S, c: &mut Cur<'_>, v: StreamVer) -> R<()> {
        let length = c.len()?;
        let last_id = StreamId {
            ms: c.len()?,
            seq: c.len()?,
        };
        let (first_id, max_deleted_id, entries_added) = if v >= StreamVer::V2 {
            let first = StreamId {
                ms: c.len()?,
                seq: c.len()?,
            };
            let max_deleted = StreamId {
                ms: c.len()?,
                seq: c.len()?,
            };
            (Some(first), Some(max_deleted), Some(c.len()?))
        } else {
            (None, None, None)
        };
        let groups = c.count(&self.cfg)?;
        sink.event(RdbEvent::StreamMeta(StreamMeta {
            length,
            last_id,
            first_id,
            max_deleted_id,
            entries_added,
            groups,
        }));
        if groups == 0 {
            self.stream_done(sink, v);
        } else {
            self.state = State::StreamGroup {
                v,
                groups_left: groups,
            };
        }
        Ok(())
    }

    fn stream_group<S: Sink>(
        &mut self,
        sink: &mut S,
        c: &mut Cur<'_>,
        v: StreamVer,
        groups_left: u64,
    ) -> R<()> {
        let name = self.bytes(c)?;
        let last_id = StreamId {
            ms: c.len()?,
            seq: c.len()?,
        };
        let entries_read = if v >= StreamVer::V2 {
            Some(c.len()?)
        } else {
            None
        };
        let pending = c.count(&self.cfg)?;
        sink.event(RdbEvent::StreamGroup(StreamGroupInfo {
            name,
            last_id,
            entries_read,
            pending,
        }));
        self.state = if pending == 0 {
            State::StreamConsumerCount { v, groups_left }
        } else {
            State::StreamPel {
                v,
                groups_left,
                left: pending,
            }
        };
        Ok(())
    }

    fn stream_consumer<S: Sink>(
        &mut self,
        sink: &mut S,
        c: &mut Cur<'_>,
        v: StreamVer,
        groups_left: u64,
        left: u64,
    ) -> R<()> {
        let name = self.bytes(c)?;
        let seen_time_ms = c.i64le()?;
        let active_time_ms = if v >= StreamVer::V3 {
            Some(c.i64le()?)
        } else {
            None
        };
        let pending = c.count(&self.cfg)?;
        sink.event(RdbEvent::StreamConsumer(StreamConsumerInfo {
            name,
            seen_time_ms,
            active_time_ms,
            pending,
        }));
        if pending == 0 {
            self.consumer_done(sink, v, groups_left, left);
        } else {
            self.state = State::StreamConsumerPel {
                v,
                groups_left,
                consumers_left: left,
                left: pending,
            };
        }
        Ok(())
    }

    fn consumer_done<S: Sink>(
        &mut self,
        sink: &mut S,
        v: StreamVer,
        groups_left: u64,
        consumers_left: u64,
    ) {
        if consumers_left > 1 {
            self.state = State::StreamConsumer {
                v,
                groups_left,
                left: consumers_left - 1,
            };
        } else {
            self.group_done(sink, v, groups_left);
        }
    }

    fn group_done<S: Sink>(&mut self, sink: &mut S, v: StreamVer, groups_left: u64) {
        if groups_left > 1 {
            self.state = State::StreamGroup {
                v,
                groups_left: groups_left - 1,
            };
        } else {
            self.stream_done(sink, v);
        }
    }

    /// After the groups: version 4 streams have the IDMP trailer.
    fn stream_done<S: Sink>(&mut self, sink: &mut S, v: StreamVer) {
        if v == StreamVer::V4 {
            self.state = State::StreamIdmpHead;
        } else {
            self.key_end(sink);
        }
    }

    fn module_op<S: Sink>(&mut self, sink: &mut S, c: &mut Cur<'_>, owner: ModuleOwner) -> R<()> {
        let start = c.p;
        let at = c.off();
        let op = c.len()?;
        match op {
            MODULE_OP_EOF => {}
            MODULE_OP_SINT | MODULE_OP_UINT => {
                c.len()?;
            }
            MODULE_OP_FLOAT => {
                c.take(4)?;
            }
            MODULE_OP_DOUBLE => {
                c.take(8)?;
            }
            MODULE_OP_STRING => c.skip_string(self.cfg.max_string_len)?,
            _ => return Err(corrupt("module opcode", at).into()),
        }
        let raw = Bytes::copy_from_slice(&c.b[start..c.p]);
        sink.event(RdbEvent::ModuleChunk(raw));
        if op == MODULE_OP_EOF {
            match owner {
                ModuleOwner::Key => self.key_end(sink),
                ModuleOwner::Aux => {
                    sink.event(RdbEvent::ModuleAuxEnd);
                    self.state = State::Record;
                }
                ModuleOwner::KeyMeta { classes_left } => {
                    self.state = if classes_left > 0 {
                        State::KeyMetaClass { left: classes_left }
                    } else {
                        State::Record
                    };
                }
            }
        }
        Ok(())
    }
}

/// Delivers one hash field from two decoded strings.
fn hash_field<S: Visitor>(sink: &mut S, field: &Str<'_>, value: &Str<'_>, expire_ms: Option<i64>) {
    field.with_slice(|f| value.with_slice(|v| sink.hash_field(f, v, expire_ms)));
}

/// Passes a packed value's text (integers as decimal) to `f`.
fn with_packed<T>(v: PackedValue<'_>, f: impl FnOnce(&[u8]) -> T) -> T {
    match v {
        PackedValue::Bytes(b) => f(b),
        PackedValue::Int(i) => f(int_text(i, &mut [0u8; 20])),
    }
}

/// Parses a score written as text (strtod-like: decimal, exponent, `inf`, `-inf`).
fn parse_score(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?;
    let v: f64 = s.trim().parse().ok()?;
    (!v.is_nan()).then_some(v)
}

fn packed_score(v: PackedValue<'_>, at: u64) -> Result<f64, RdbError> {
    match v {
        PackedValue::Int(i) => Ok(i as f64),
        PackedValue::Bytes(b) => parse_score(b).ok_or(corrupt("zset score", at)),
    }
}

fn packed_int(v: PackedValue<'_>) -> Option<i64> {
    match v {
        PackedValue::Int(i) => Some(i),
        PackedValue::Bytes(b) => std::str::from_utf8(b).ok()?.parse().ok(),
    }
}

/// Decodes one container blob into the visitor.
pub(super) fn decode_blob<S: Visitor>(
    kind: Blob,
    data: &[u8],
    at: u64,
    sink: &mut S,
) -> Result<(), RdbError> {
    let lp_err =
        |e: super::encoding::ContainerError| container_err(ContainerKind::Listpack, at, &e);
    let zl_err = |e: super::encoding::ContainerError| container_err(ContainerKind::Ziplist, at, &e);
    match kind {
        Blob::ListZiplist => {
            for v in Ziplist::parse(data).map_err(zl_err)?.iter() {
                with_packed(v, |e| sink.element(e));
            }
        }
        Blob::SetListpack => {
            for v in Listpack::parse(data).map_err(lp_err)?.iter() {
                with_packed(v, |e| sink.element(e));
            }
        }
        Blob::SetIntset => {
            let is =
                Intset::parse(data).map_err(|e| container_err(ContainerKind::Intset, at, &e))?;
            for i in is.iter() {
                sink.element(int_text(i, &mut [0u8; 20]));
            }
        }
        Blob::ZsetZiplist => zset_pairs(Ziplist::parse(data).map_err(zl_err)?.iter(), at, sink)?,
        Blob::ZsetListpack => zset_pairs(Listpack::parse(data).map_err(lp_err)?.iter(), at, sink)?,
        Blob::HashZiplist => hash_pairs(Ziplist::parse(data).map_err(zl_err)?.iter(), at, sink)?,
        Blob::HashListpack => hash_pairs(Listpack::parse(data).map_err(lp_err)?.iter(), at, sink)?,
        Blob::HashZipmap => {
            let zm =
                Zipmap::parse(data).map_err(|e| container_err(ContainerKind::Zipmap, at, &e))?;
            for (f, v) in zm.iter() {
                sink.hash_field(f, v, None);
            }
        }
        Blob::HashListpackEx { .. } => {
            let lp = Listpack::parse(data).map_err(lp_err)?;
            let mut it = lp.iter();
            while let Some(field) = it.next() {
                let (Some(value), Some(ttl)) = (it.next(), it.next()) else {
                    return Err(corrupt("hash listpack-ex triple", at));
                };
                let ttl = packed_int(ttl).ok_or(corrupt("hash field ttl", at))?;
                let expire_ms = (ttl != 0).then_some(ttl);
                with_packed(field, |f| {
                    with_packed(value, |v| sink.hash_field(f, v, expire_ms))
                });
            }
        }
    }
    Ok(())
}

fn zset_pairs<'a, S: Visitor>(
    mut it: impl Iterator<Item = PackedValue<'a>>,
    at: u64,
    sink: &mut S,
) -> Result<(), RdbError> {
    while let Some(member) = it.next() {
        let score = it.next().ok_or(corrupt("zset pair", at))?;
        let score = packed_score(score, at)?;
        with_packed(member, |m| sink.zset_member(m, score));
    }
    Ok(())
}

fn hash_pairs<'a, S: Visitor>(
    mut it: impl Iterator<Item = PackedValue<'a>>,
    at: u64,
    sink: &mut S,
) -> Result<(), RdbError> {
    while let Some(field) = it.next() {
        let value = it.next().ok_or(corrupt("hash pair", at))?;
        with_packed(field, |f| {
            with_packed(value, |v| sink.hash_field(f, v, None))
        });
    }
    Ok(())
}

/// Decodes one stream listpack node (Redis src/t_stream.c layout) into events.
pub(super) fn decode_stream_node<S: Visitor>(
    master: StreamId,
    data: &[u8],
    at: u64,
    sink: &mut S,
) -> Result<(), RdbError> {
    let lp = Listpack::parse(data).map_err(|e| container_err(ContainerKind::Listpack, at, &e))?;
    let mut it = lp.iter();
    let bad = |what| corrupt(what, at);
    let int = |it: &mut dyn Iterator<Item = PackedValue<'_>>| -> Result<i64, RdbError> {
        it.next()
            .and_then(packed_int)
            .ok_or(bad("stream node entry"))
    };
    let live = int(&mut it)?;
    let deleted = int(&mut it)?;
    let nmaster = int(&mut it)?;
    if live < 0 || deleted < 0 || nmaster < 0 {
        return Err(bad("stream node header"));
    }
    let mut master_fields = Vec::new();
    for _ in 0..nmaster {
        let f = it.next().ok_or(bad("stream master entry"))?;
        master_fields.push(packed_bytes(f));
    }
    if int(&mut it)? != 0 {
        return Err(bad("stream master entry terminator"));
    }
    sink.event(RdbEvent::StreamNode {
        master_id: master,
        live: live as u64,
        deleted: deleted as u64,
    });
    let (mut seen_live, mut seen_deleted) = (0i64, 0i64);
    while let Some(flags) = it.next() {
        let flags = packed_int(flags).ok_or(bad("stream entry flags"))?;
        let ms_delta = int(&mut it)?;
        let seq_delta = int(&mut it)?;
        let id = StreamId {
            ms: master.ms.wrapping_add(ms_delta as u64),
            seq: master.seq.wrapping_add(seq_delta as u64),
        };
        let mut fields = Vec::new();
        let expected_count = if flags & STREAM_ITEM_FLAG_SAMEFIELDS != 0 {
            for f in &master_fields {
                let v = it.next().ok_or(bad("stream entry value"))?;
                fields.push((f.clone(), packed_bytes(v)));
            }
            3 + nmaster
        } else {
            let nf = int(&mut it)?;
            if nf < 0 {
                return Err(bad("stream entry field count"));
            }
            for _ in 0..nf {
                let (Some(f), Some(v)) = (it.next(), it.next()) else {
                    return Err(bad("stream entry field"));
                };
                fields.push((packed_bytes(f), packed_bytes(v)));
            }
            4 + 2 * nf
        };
        if int(&mut it)? != expected_count {
            return Err(bad("stream entry lp-count"));
        }
        if flags & STREAM_ITEM_FLAG_DELETED != 0 {
            seen_deleted += 1;
        } else {
            seen_live += 1;
            sink.event(RdbEvent::StreamEntry { id, fields });
        }
    }
    if seen_live != live || seen_deleted != deleted {
        return Err(bad("stream node entry count"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(b: &[u8]) -> Cur<'_> {
        Cur { b, p: 0, base: 100 }
    }

    #[test]
    fn lengths_in_every_form() {
        for (bytes, want) in [
            (&[0x3F][..], 63u64),
            (&[0x40, 0x40][..], 64),
            (&[0x7F, 0xFF][..], 16383),
            (&[0x80, 0, 0, 0x40, 0][..], 16384),
            (&[0x80, 0, 0, 0, 1][..], 1),
            (
                &[0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF][..],
                u64::MAX,
            ),
        ] {
            let mut c = cur(bytes);
            assert!(matches!(c.len(), Ok(v) if v == want));
            assert_eq!(c.p, bytes.len());
        }
        // Incomplete: Need, not an error.
        assert!(matches!(cur(&[0x81, 0, 0]).len(), Err(Stop::Need)));
        assert!(matches!(cur(&[0x40]).len(), Err(Stop::Need)));
        // 0x82..0xBF and the special forms are not lengths.
        for b in [0x82u8, 0xBF, 0xC0] {
            match cur(&[b, 0, 0, 0, 0, 0, 0, 0, 0]).len() {
                Err(Stop::Err(e)) => match *e {
                    RdbError::InvalidLength { byte, offset: 100 } => assert_eq!(byte, b),
                    e => panic!("{e:?}"),
                },
                _ => panic!("{b:#x} accepted"),
            }
        }
    }

    #[test]
    fn string_heads() {
        assert!(matches!(
            cur(&[0xC0, 0x80]).str_head(),
            Ok(StrHead::Int(-128))
        ));
        assert!(matches!(
            cur(&[0xC1, 0xAB, 0xAB]).str_head(),
            Ok(StrHead::Int(-21589))
        ));
        assert!(matches!(
            cur(&[0xC2, 0xFF, 0xFF, 0xFF, 0x7F]).str_head(),
            Ok(StrHead::Int(2147483647))
        ));
        assert!(matches!(
            cur(&[0xC3, 0x05, 0x0A]).str_head(),
            Ok(StrHead::Lzf { clen: 5, ulen: 10 })
        ));
        assert!(matches!(cur(&[0x03]).str_head(), Ok(StrHead::Raw(3))));
        assert!(matches!(
            cur(&[0xC4]).str_head(),
            Err(Stop::Err(e)) if matches!(*e, RdbError::InvalidStringEncoding {
                byte: 0xC4,
                ..
            })
        ));
        // A declared length over the limit fails before the bytes arrive.
        assert!(matches!(
            cur(&[0x80, 0, 1, 0, 0]).string(1000, Limit::StringLen),
            Err(Stop::Err(e)) if matches!(*e, RdbError::LimitExceeded {
                len: 65536,
                offset: 100,
                ..
            })
        ));
        // The short-string fast path applies the limit too.
        assert!(matches!(
            cur(&[0x05, b'a', b'b', b'c', b'd', b'e']).string(4, Limit::StringLen),
            Err(Stop::Err(e)) if matches!(*e, RdbError::LimitExceeded {
                len: 5,
                offset: 100,
                ..
            })
        ));
        assert!(matches!(
            cur(&[0x05, b'a', b'b', b'c', b'd', b'e']).string(5, Limit::StringLen),
            Ok(Str::Slice(b"abcde"))
        ));
        assert!(matches!(
            cur(&[0x05, b'a']).string(1000, Limit::StringLen),
            Err(Stop::Need)
        ));
    }

    #[test]
    fn scores() {
        assert_eq!(parse_score(b"1.5"), Some(1.5));
        assert_eq!(parse_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_score(b"nan"), None);
        assert_eq!(parse_score(b"x"), None);
    }
}
