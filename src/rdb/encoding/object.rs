//! Encoding whole values as RDB objects, choosing the encoding Redis itself would write.
//!
//! This is the value layer of the RDB writer: [`ObjectEncoder::write_object`] appends the type
//! byte, optionally the key, and the value of one key exactly as Redis lays them out in a file or
//! a `DUMP` payload, at RDB version 9 to 12. The encoding follows Redis's default thresholds
//! ([`Thresholds`]) and what each version can hold:
//!
//! | Value | Small (under the thresholds) | Large |
//! |---|---|---|
//! | string | integer (int8/16/32) if canonical, LZF if > 20 bytes and it saves ≥ 4 bytes, else raw | same |
//! | list | quicklist 2 (18) of 8 KiB listpack nodes (v10+); quicklist (14) of ziplists (v9) | same; elements ≥ 1 GiB in plain nodes (v10+) |
//! | set | intset (11) if all members are integers (≤ 512); listpack (20, v11+) if ≤ 128 × ≤ 64 bytes | hash table (2) |
//! | zset | listpack (17, v10+) / ziplist (12, v9) sorted by score then member | skiplist (5), binary scores, highest first |
//! | hash | listpack (16, v10+) / ziplist (13, v9) | hash table (4) |
//! | hash with field TTLs | listpack-ex (25, v12) | metadata (24, v12) |
//! | module | type 7, passed through | |
//!
//! | stream | listpack nodes (15 for v9, 19 for v10, 21 for v11+), ≤ 100 entries / 4 KiB per node | |
//!
//! Empty collections, duplicate
//! members or fields, NaN scores and field TTLs below version 12 are refused: Redis would reject
//! or silently lose them.
//!
//! ```
//! use bytes::Bytes;
//! use respsync::rdb::encoding::object::ObjectEncoder;
//! use respsync::rdb::Value;
//!
//! let mut enc = ObjectEncoder::new(10).unwrap();
//! let mut out = Vec::new();
//! let value = Value::Set(vec![Bytes::from_static(b"3"), Bytes::from_static(b"1")]);
//! enc.write_object(Some(b"s"), &value, &mut out).unwrap();
//! // Type 11 (intset), key "s", then the intset blob as an RDB string.
//! assert_eq!(out[..3], [11, 1, b's']);
//! assert_eq!(out[3..], [12, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 3, 0]);
//! ```

use std::collections::HashSet;

use super::crc64::crc64;
use super::intset::IntsetBuilder;
use super::listpack::ListpackBuilder;
use super::lzf::Compressor;
use super::parse_canonical_i64;
use super::ziplist::ZiplistBuilder;
use crate::rdb::{HashEntry, Stream, StreamEntry, StreamId, Value};

/// Oldest RDB version the encoder writes (Redis 5/6).
pub const MIN_VERSION: u8 = 9;
/// Newest RDB version the encoder writes (Redis 7.4).
pub const MAX_VERSION: u8 = 12;

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A set member, hash field or zset member appears twice.
    #[error("duplicate member or field")]
    Duplicate,
    /// An empty list, set, zset or hash (Redis never writes one and rejects it on load).
    #[error("empty collection")]
    Empty,
    /// A hash field has its own TTL but the RDB version cannot store one (needs 12).
    #[error("hash field expiry needs rdb version 12, writing {0}")]
    FieldExpiryUnsupported(u8),
    /// A hash field TTL is negative or above Redis's maximum (2^48 − 1 ms).
    #[error("hash field expiry {0} out of range")]
    FieldExpiryOutOfRange(i64),
    /// A zset score is NaN.
    #[error("nan zset score")]
    NanScore,
    /// Stream entries are not in strictly increasing id order.
    #[error("stream entry {0} not after the previous one")]
    StreamOrder(String),
    /// A value type this encoder does not write yet.
    #[error("cannot encode {0} values yet")]
    Unsupported(&'static str),
    /// The requested RDB version is not one of 9–12.
    #[error("unsupported rdb version {0} (writes 9 to 12)")]
    Version(u8),
}

/// The size thresholds below which Redis keeps a collection compact; defaults are Redis's.
///
/// ```
/// use respsync::rdb::encoding::object::Thresholds;
///
/// let t = Thresholds::default();
/// assert_eq!((t.hash_max_listpack_entries, t.hash_max_listpack_value), (512, 64));
/// assert_eq!(t.set_max_intset_entries, 512);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Thresholds {
    /// `hash-max-listpack-entries` (also `hash-max-ziplist-entries`): 512.
    pub hash_max_listpack_entries: usize,
    /// `hash-max-listpack-value`: 64 bytes.
    pub hash_max_listpack_value: usize,
    /// `zset-max-listpack-entries`: 128.
    pub zset_max_listpack_entries: usize,
    /// `zset-max-listpack-value`: 64 bytes.
    pub zset_max_listpack_value: usize,
    /// `set-max-intset-entries`: 512.
    pub set_max_intset_entries: usize,
    /// `set-max-listpack-entries` (Redis 7.2+, RDB 11+): 128.
    pub set_max_listpack_entries: usize,
    /// `set-max-listpack-value` (Redis 7.2+, RDB 11+): 64 bytes.
    pub set_max_listpack_value: usize,
    /// Byte limit of one quicklist node, from `list-max-listpack-size -2`: 8192.
    pub list_max_node_bytes: usize,
    /// Elements this large or larger get a plain quicklist node (Redis: 1 GiB).
    pub list_packed_threshold: usize,
    /// `stream-node-max-bytes`: 4096.
    pub stream_node_max_bytes: usize,
    /// `stream-node-max-entries`: 100.
    pub stream_node_max_entries: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
            list_max_node_bytes: 8192,
            list_packed_threshold: 1 << 30,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
        }
    }
}

/// Redis's estimate of per-element overhead when filling a quicklist node.
const NODE_ESTIMATE_OVERHEAD: usize = 8;
/// Largest hash field expiry Redis accepts (`EB_EXPIRE_TIME_MAX`).
const MAX_FIELD_EXPIRY: i64 = (1 << 48) - 1;

/// RDB type bytes written here.
pub(crate) mod ty {
    pub const STRING: u8 = 0;
    pub const SET: u8 = 2;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_2: u8 = 7;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    pub const HASH_METADATA: u8 = 24;
    pub const HASH_LISTPACK_EX: u8 = 25;
}

/// Encodes values as RDB objects for one RDB version. Holds a reusable LZF compressor.
///
/// ```
/// use bytes::Bytes;
/// use respsync::rdb::encoding::object::ObjectEncoder;
/// use respsync::rdb::Value;
///
/// let mut enc = ObjectEncoder::new(10).unwrap();
/// let payload = enc.dump_payload(&Value::String(Bytes::from_static(b"hello"))).unwrap();
/// // Type 0, string "hello", RDB version 10, then the CRC-64 of all that.
/// assert_eq!(payload[..9], [0, 5, b'h', b'e', b'l', b'l', b'o', 10, 0]);
/// assert_eq!(payload.len(), 17);
/// ```
#[derive(Debug, Clone)]
pub struct ObjectEncoder {
    version: u8,
    thresholds: Thresholds,
    compression: bool,
    lzf: Compressor,
    /// Reused buffer for compressed strings.
    scratch: Vec<u8>,
}

impl ObjectEncoder {
    /// An encoder for RDB `version` (9–12) with Redis's default thresholds and LZF compression
    /// on (`rdbcompression yes`).
    pub fn new(version: u8) -> Result<Self, EncodeError> {
        if !(MIN_VERSION..=MAX_VERSION).contains(&version) {
            return Err(EncodeError::Version(version));
        }
        Ok(Self {
            version,
            thresholds: Thresholds::default(),
            compression: true,
            lzf: Compressor::new(),
            scratch: Vec::new(),
        })
    }

    /// Replaces the thresholds.
    pub fn set_thresholds(&mut self, thresholds: Thresholds) -> &mut Self {
        self.thresholds = thresholds;
        self
    }

    /// Turns LZF compression of strings longer than 20 bytes on or off.
    pub fn set_compression(&mut self, on: bool) -> &mut Self {
        self.compression = on;
        self
    }

    /// The RDB version written.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Appends the type byte, the key (if any, as an RDB string) and the value, and returns the
    /// type byte. On error nothing is appended.
    pub fn write_object(
        &mut self,
        key: Option<&[u8]>,
        value: &Value,
        out: &mut Vec<u8>,
    ) -> Result<u8, EncodeError> {
        let start = out.len();
        out.push(0); // the type byte, known once the value is encoded
        if let Some(key) = key {
            self.write_string(key, out);
        }
        match self.write_value(value, out) {
            Ok(ty) => {
                out[start] = ty;
                Ok(ty)
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }

    /// A `DUMP` payload for `value`: type byte, value, the RDB version as u16 LE, and the
    /// CRC-64 of all of that as u64 LE. Real servers accept it with `RESTORE` if their RDB
    /// version is at least this encoder's.
    pub fn dump_payload(&mut self, value: &Value) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.write_object(None, value, &mut out)?;
        out.extend_from_slice(&u16::from(self.version).to_le_bytes());
        let crc = crc64(0, &out);
        out.extend_from_slice(&crc.to_le_bytes());
        Ok(out)
    }

    /// Appends `s` as an RDB string the way Redis's `rdbSaveRawString` does: as an int8/16/32
    /// if it is the canonical text of one (and at most 11 bytes), LZF-compressed if it is longer
    /// than 20 bytes and that saves at least 4 bytes (when compression is on), raw otherwise.
    pub fn write_string(&mut self, s: &[u8], out: &mut Vec<u8>) {
        if s.len() <= 11 {
            if let Some(v) = parse_canonical_i64(s) {
                if let Ok(v) = i8::try_from(v) {
                    out.push(0xc0);
                    out.push(v as u8);
                    return;
                }
                if let Ok(v) = i16::try_from(v) {
                    out.push(0xc1);
                    out.extend_from_slice(&v.to_le_bytes());
                    return;
                }
                if let Ok(v) = i32::try_from(v) {
                    out.push(0xc2);
                    out.extend_from_slice(&v.to_le_bytes());
                    return;
                }
            }
        }
        if self.compression && s.len() > 20 {
            let mut packed = std::mem::take(&mut self.scratch);
            packed.clear();
            let worth_it = self.lzf.compress(s, &mut packed);
            if worth_it {
                out.push(0xc3);
                write_len(packed.len() as u64, out);
                write_len(s.len() as u64, out);
                out.extend_from_slice(&packed);
            }
            self.scratch = packed;
            if worth_it {
                return;
            }
        }
        write_len(s.len() as u64, out);
        out.extend_from_slice(s);
    }

    /// Appends the value alone (no type byte) and returns its type byte.
    fn write_value(&mut self, value: &Value, out: &mut Vec<u8>) -> Result<u8, EncodeError> {
        match value {
            Value::String(s) => {
                self.write_string(s, out);
                Ok(ty::STRING)
            }
            Value::List(items) => self.write_list(items, out),
            Value::Set(members) => self.write_set(members, out),
            Value::Zset(pairs) => self.write_zset(pairs, out),
            Value::Hash(entries) => self.write_hash(entries, out),
            Value::Module(m) => {
                write_len(m.id.0, out);
                out.extend_from_slice(&m.raw);
                Ok(ty::MODULE_2)
            }
            Value::Stream(stream) => self.write_stream(stream, out),
            #[allow(unreachable_patterns)]
            _ => Err(EncodeError::Unsupported("unknown")),
        }
    }

    fn write_list(&mut self, items: &[bytes::Bytes], out: &mut Vec<u8>) -> Result<u8, EncodeError> {
        if items.is_empty() {
            return Err(EncodeError::Empty);
        }
        let limit = self.thresholds.list_max_node_bytes;
        if self.version < 10 {
            // Redis 6: a quicklist of ziplists; `_quicklistNodeAllowInsert` estimates the
            // entry overhead from the element length (prevlen and string header sizes).
            let mut nodes = Vec::new();
            let mut node = ZiplistBuilder::new();
            for item in items {
                let sz = item.len();
                let overhead = if sz < 254 { 1 } else { 5 }
                    + if sz < 64 {
                        1
                    } else if sz < 16384 {
                        2
                    } else {
                        5
                    };
                if !node.is_empty() && node.size() + sz + overhead > limit {
                    nodes.push(std::mem::take(&mut node).finish());
                }
                node.push(item);
            }
            nodes.push(node.finish());
            write_len(nodes.len() as u64, out);
            for n in &nodes {
                self.write_string(n, out);
            }
            return Ok(ty::LIST_QUICKLIST);
        }
        // Quicklist 2: packed listpack nodes; elements at or above the packed threshold get a
        // plain node of their own.
        enum Node {
            Packed(Vec<u8>),
            Plain(bytes::Bytes),
        }
        let mut nodes = Vec::new();
        let mut node: Option<ListpackBuilder> = None;
        for item in items {
            if item.len() >= self.thresholds.list_packed_threshold {
                if let Some(n) = node.take() {
                    nodes.push(Node::Packed(n.finish()));
                }
                nodes.push(Node::Plain(item.clone()));
                continue;
            }
            let full = node
                .as_ref()
                .is_some_and(|n| n.size() + item.len() + NODE_ESTIMATE_OVERHEAD > limit);
            if full {
                if let Some(n) = node.take() {
                    nodes.push(Node::Packed(n.finish()));
                }
            }
            node.get_or_insert_with(ListpackBuilder::new).push(item);
        }
        if let Some(n) = node {
            nodes.push(Node::Packed(n.finish()));
        }
        write_len(nodes.len() as u64, out);
        for n in &nodes {
            match n {
                Node::Plain(b) => {
                    write_len(1, out);
                    self.write_string(b, out);
                }
                Node::Packed(lp) => {
                    write_len(2, out);
                    self.write_string(lp, out);
                }
            }
        }
        Ok(ty::LIST_QUICKLIST_2)
    }

    fn write_set(
        &mut self,
        members: &[bytes::Bytes],
        out: &mut Vec<u8>,
    ) -> Result<u8, EncodeError> {
        if members.is_empty() {
            return Err(EncodeError::Empty);
        }
        check_unique(members.iter().map(|m| &m[..]))?;
        let t = self.thresholds;
        if members.len() <= t.set_max_intset_entries {
            let ints: Option<Vec<i64>> = members.iter().map(|m| parse_canonical_i64(m)).collect();
            if let Some(ints) = ints {
                let mut b = IntsetBuilder::new();
                ints.into_iter().for_each(|v| b.push(v));
                self.write_string(&b.finish(), out);
                return Ok(ty::SET_INTSET);
            }
        }
        if self.version >= 11
            && members.len() <= t.set_max_listpack_entries
            && members.iter().all(|m| m.len() <= t.set_max_listpack_value)
        {
            let mut b = ListpackBuilder::new();
            members.iter().for_each(|m| b.push(m));
            self.write_string(&b.finish(), out);
            return Ok(ty::SET_LISTPACK);
        }
        write_len(members.len() as u64, out);
        for m in members {
            self.write_string(m, out);
        }
        Ok(ty::SET)
    }

    fn write_zset(
        &mut self,
        pairs: &[(bytes::Bytes, f64)],
        out: &mut Vec<u8>,
    ) -> Result<u8, EncodeError> {
        if pairs.is_empty() {
            return Err(EncodeError::Empty);
        }
        if pairs.iter().any(|(_, s)| s.is_nan()) {
            return Err(EncodeError::NanScore);
        }
        check_unique(pairs.iter().map(|(m, _)| &m[..]))?;
        let mut sorted: Vec<&(bytes::Bytes, f64)> = pairs.iter().collect();
        // Redis's order: score, then member bytes (memcmp, shorter first on a common prefix).
        sorted.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let t = self.thresholds;
        if pairs.len() <= t.zset_max_listpack_entries
            && pairs
                .iter()
                .all(|(m, _)| m.len() <= t.zset_max_listpack_value)
        {
            let mut score = Vec::new();
            if self.version >= 10 {
                let mut b = ListpackBuilder::new();
                for (m, s) in &sorted {
                    b.push(m);
                    score.clear();
                    score_string(self.version, *s, &mut score);
                    b.push(&score);
                }
                self.write_string(&b.finish(), out);
                return Ok(ty::ZSET_LISTPACK);
            }
            let mut b = ZiplistBuilder::new();
            for (m, s) in &sorted {
                b.push(m);
                score.clear();
                score_string(self.version, *s, &mut score);
                b.push(&score);
            }
            self.write_string(&b.finish(), out);
            return Ok(ty::ZSET_ZIPLIST);
        }
        // Skiplist: Redis saves from the tail, highest score first.
        write_len(pairs.len() as u64, out);
        for (m, s) in sorted.iter().rev() {
            self.write_string(m, out);
            out.extend_from_slice(&s.to_le_bytes());
        }
        Ok(ty::ZSET_2)
    }

    fn write_hash(&mut self, entries: &[HashEntry], out: &mut Vec<u8>) -> Result<u8, EncodeError> {
        if entries.is_empty() {
            return Err(EncodeError::Empty);
        }
        check_unique(entries.iter().map(|e| &e.field[..]))?;
        let t = self.thresholds;
        let small = entries.len() <= t.hash_max_listpack_entries
            && entries.iter().all(|e| {
                e.field.len() <= t.hash_max_listpack_value
                    && e.value.len() <= t.hash_max_listpack_value
            });
        if entries.iter().any(|e| e.expire_ms.is_some()) {
            return self.write_hash_with_ttls(entries, small, out);
        }
        if small {
            if self.version >= 10 {
                let mut b = ListpackBuilder::new();
                for e in entries {
                    b.push(&e.field);
                    b.push(&e.value);
                }
                self.write_string(&b.finish(), out);
                return Ok(ty::HASH_LISTPACK);
            }
            let mut b = ZiplistBuilder::new();
            for e in entries {
                b.push(&e.field);
                b.push(&e.value);
            }
            self.write_string(&b.finish(), out);
            return Ok(ty::HASH_ZIPLIST);
        }
        write_len(entries.len() as u64, out);
        for e in entries {
            self.write_string(&e.field, out);
            self.write_string(&e.value, out);
        }
        Ok(ty::HASH)
    }

    /// Redis 7.4's hashes with per-field TTLs (RDB 12).
    fn write_hash_with_ttls(
        &mut self,
        entries: &[HashEntry],
        small: bool,
        out: &mut Vec<u8>,
    ) -> Result<u8, EncodeError> {
        if self.version < 12 {
            return Err(EncodeError::FieldExpiryUnsupported(self.version));
        }
        for e in entries {
            if let Some(t) = e.expire_ms {
                if !(0..=MAX_FIELD_EXPIRY).contains(&t) {
                    return Err(EncodeError::FieldExpiryOutOfRange(t));
                }
            }
        }
        let min_expire = entries
            .iter()
            .filter_map(|e| e.expire_ms)
            .min()
            .unwrap_or(0);
        out.extend_from_slice(&(min_expire as u64).to_le_bytes());
        if small {
            // Fields with a TTL first, by expiry, then the others (the order Redis keeps).
            let mut sorted: Vec<&HashEntry> = entries.iter().collect();
            sorted.sort_by_key(|e| e.expire_ms.map_or((1, 0), |t| (0, t)));
            let mut b = ListpackBuilder::new();
            for e in sorted {
                b.push(&e.field);
                b.push(&e.value);
                b.push_int(e.expire_ms.unwrap_or(0));
            }
            self.write_string(&b.finish(), out);
            return Ok(ty::HASH_LISTPACK_EX);
        }
        write_len(entries.len() as u64, out);
        for e in entries {
            // Stored relative to the minimum, plus one; 0 means no TTL.
            let ttl = e.expire_ms.map_or(0, |t| (t - min_expire) as u64 + 1);
            write_len(ttl, out);
            self.write_string(&e.field, out);
            self.write_string(&e.value, out);
        }
        Ok(ty::HASH_METADATA)
    }
}

/// Stream entry flag: the entry has exactly the master entry's fields (values only).
const STREAM_SAMEFIELDS: i64 = 2;

impl ObjectEncoder {
    /// Streams as Redis lays them out: listpack nodes keyed by their master id, filled by
    /// `streamAppendItem`'s rules (a new node when the tail node's bytes plus the new entry's
    /// field and value bytes reach `stream-node-max-bytes`, or it holds
    /// `stream-node-max-entries`), then the metadata, groups, PELs and consumers. Type 15 for
    /// RDB 9, 19 for RDB 10, 21 for RDB 11+.
    fn write_stream(&mut self, stream: &Stream, out: &mut Vec<u8>) -> Result<u8, EncodeError> {
        let ty = match self.version {
            9 => ty::STREAM_LISTPACKS,
            10 => ty::STREAM_LISTPACKS_2,
            _ => ty::STREAM_LISTPACKS_3,
        };
        for pair in stream.entries.windows(2) {
            if (pair[1].id.ms, pair[1].id.seq) <= (pair[0].id.ms, pair[0].id.seq) {
                return Err(EncodeError::StreamOrder(pair[1].id.to_string()));
            }
        }
        let nodes = self.stream_nodes(&stream.entries);
        write_len(nodes.len() as u64, out);
        for (master, lp) in &nodes {
            self.write_string(&id_bytes(*master), out);
            self.write_string(lp, out);
        }
        let meta = &stream.meta;
        write_len(stream.entries.len() as u64, out);
        write_id(meta.last_id, out);
        if ty != ty::STREAM_LISTPACKS {
            let first = meta
                .first_id
                .or_else(|| stream.entries.first().map(|e| e.id))
                .unwrap_or(StreamId { ms: 0, seq: 0 });
            write_id(first, out);
            write_id(
                meta.max_deleted_id.unwrap_or(StreamId { ms: 0, seq: 0 }),
                out,
            );
            write_len(
                meta.entries_added.unwrap_or(stream.entries.len() as u64),
                out,
            );
        }
        write_len(stream.groups.len() as u64, out);
        for group in &stream.groups {
            self.write_string(&group.info.name, out);
            write_id(group.info.last_id, out);
            if ty != ty::STREAM_LISTPACKS {
                // Unknown (-1) when the source did not say.
                write_len(group.info.entries_read.unwrap_or(u64::MAX), out);
            }
            write_len(group.pending.len() as u64, out);
            for p in &group.pending {
                out.extend_from_slice(&id_bytes(p.id));
                out.extend_from_slice(&p.delivery_time_ms.to_le_bytes());
                write_len(p.delivery_count, out);
            }
            write_len(group.consumers.len() as u64, out);
            for consumer in &group.consumers {
                self.write_string(&consumer.info.name, out);
                out.extend_from_slice(&consumer.info.seen_time_ms.to_le_bytes());
                if ty == ty::STREAM_LISTPACKS_3 {
                    let active = consumer
                        .info
                        .active_time_ms
                        .unwrap_or(consumer.info.seen_time_ms);
                    out.extend_from_slice(&active.to_le_bytes());
                }
                write_len(consumer.pending.len() as u64, out);
                for id in &consumer.pending {
                    out.extend_from_slice(&id_bytes(*id));
                }
            }
        }
        Ok(ty)
    }

    /// Splits entries into listpack nodes the way `streamAppendItem` fills them.
    fn stream_nodes(&self, entries: &[StreamEntry]) -> Vec<(StreamId, Vec<u8>)> {
        struct Node<'a> {
            master: StreamId,
            fields: Vec<&'a [u8]>,
            entries: Vec<&'a StreamEntry>,
            /// Bytes of the delta-encoded entries (with backlens), tracked incrementally.
            entry_bytes: usize,
        }
        impl Node<'_> {
            /// The node listpack's size as `lpBytes` would report it.
            fn bytes(&self) -> usize {
                // Header, master entry (its count changes as entries are added) and end byte.
                let master = stream_listpack(self.master, &self.fields, &[], self.entries.len());
                master.len() + self.entry_bytes
            }
        }
        let t = self.thresholds;
        let mut nodes: Vec<Node<'_>> = Vec::new();
        for entry in entries {
            let payload: usize = entry.fields.iter().map(|(f, v)| f.len() + v.len()).sum();
            let fits = nodes.last().is_some_and(|n| {
                n.bytes() + payload < t.stream_node_max_bytes
                    && n.entries.len() < t.stream_node_max_entries
            });
            if !fits {
                nodes.push(Node {
                    master: entry.id,
                    fields: entry.fields.iter().map(|(f, _)| &f[..]).collect(),
                    entries: Vec::new(),
                    entry_bytes: 0,
                });
            }
            if let Some(node) = nodes.last_mut() {
                // One entry alone, minus the empty listpack's 7 bytes, is what it adds.
                let mut one = ListpackBuilder::new();
                push_stream_entry(&mut one, node.master, &node.fields, entry);
                node.entry_bytes += one.size() - 7;
                node.entries.push(entry);
            }
        }
        nodes
            .into_iter()
            .map(|n| {
                let count = n.entries.len();
                (
                    n.master,
                    stream_listpack(n.master, &n.fields, &n.entries, count),
                )
            })
            .collect()
    }
}

/// The listpack of one stream node: the master entry (with `count` live entries), then each
/// entry delta-encoded.
fn stream_listpack(
    master: StreamId,
    fields: &[&[u8]],
    entries: &[&StreamEntry],
    count: usize,
) -> Vec<u8> {
    let mut lp = ListpackBuilder::new();
    lp.push_int(count as i64);
    lp.push_int(0);
    lp.push_int(fields.len() as i64);
    fields.iter().for_each(|f| lp.push(f));
    lp.push_int(0);
    for e in entries {
        push_stream_entry(&mut lp, master, fields, e);
    }
    lp.finish()
}

/// Appends one stream entry: flags, id deltas, fields (or only values when they are the
/// master's), and the backward count.
fn push_stream_entry(
    lp: &mut ListpackBuilder,
    master: StreamId,
    fields: &[&[u8]],
    e: &StreamEntry,
) {
    let same = e.fields.len() == fields.len()
        && e.fields.iter().zip(fields).all(|((f, _), m)| &f[..] == *m);
    lp.push_int(if same { STREAM_SAMEFIELDS } else { 0 });
    lp.push_int(e.id.ms.wrapping_sub(master.ms) as i64);
    lp.push_int(e.id.seq.wrapping_sub(master.seq) as i64);
    let n = e.fields.len() as i64;
    if same {
        e.fields.iter().for_each(|(_, v)| lp.push(v));
        lp.push_int(n + 3);
    } else {
        lp.push_int(n);
        for (f, v) in &e.fields {
            lp.push(f);
            lp.push(v);
        }
        lp.push_int(2 * n + 4);
    }
}

/// A stream id as two RDB lengths.
fn write_id(id: StreamId, out: &mut Vec<u8>) {
    write_len(id.ms, out);
    write_len(id.seq, out);
}

/// A stream id as 16 raw big-endian bytes (PEL entries and node keys).
fn id_bytes(id: StreamId) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.ms.to_be_bytes());
    b[8..].copy_from_slice(&id.seq.to_be_bytes());
    b
}

/// Refuses a collection with a repeated member or field.
fn check_unique<'a>(items: impl Iterator<Item = &'a [u8]>) -> Result<(), EncodeError> {
    let mut seen = HashSet::new();
    for item in items {
        if !seen.insert(item) {
            return Err(EncodeError::Duplicate);
        }
    }
    Ok(())
}

/// Appends an RDB length (`rdbSaveLen`): 6-bit, 14-bit big endian, `0x80` + u32 BE or `0x81` +
/// u64 BE.
///
/// ```
/// use respsync::rdb::encoding::object::write_len;
///
/// let mut out = Vec::new();
/// for len in [5, 300, 70_000, 1 << 40] {
///     write_len(len, &mut out);
/// }
/// assert_eq!(out, [
///     0x05,
///     0x41, 0x2c,
///     0x80, 0x00, 0x01, 0x11, 0x70,
///     0x81, 0, 0, 0x01, 0, 0, 0, 0, 0,
/// ]);
/// ```
pub fn write_len(len: u64, out: &mut Vec<u8>) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push((len & 0xff) as u8);
    } else if let Ok(len) = u32::try_from(len) {
        out.push(0x80);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Appends a zset score the way Redis 7.0's `d2string` formats it for listpacks and ziplists:
/// `inf`/`-inf`, `0`/`-0`, the integer text for integral values within ±2^62, else C's `%.17g`.
///
/// ```
/// use respsync::rdb::encoding::object::d2string;
///
/// let f = |v: f64| { let mut o = Vec::new(); d2string(v, &mut o); String::from_utf8(o).unwrap() };
/// assert_eq!(f(3.0), "3");
/// assert_eq!(f(-0.0), "-0");
/// assert_eq!(f(0.1), "0.10000000000000001");
/// assert_eq!(f(1.5e300), "1.5000000000000001e+300");
/// assert_eq!(f(f64::NEG_INFINITY), "-inf");
/// ```
pub fn d2string(v: f64, out: &mut Vec<u8>) {
    use std::io::Write;
    if v.is_nan() {
        out.extend_from_slice(b"nan");
    } else if v.is_infinite() {
        out.extend_from_slice(if v < 0.0 { b"-inf" } else { b"inf" });
    } else if v == 0.0 {
        out.extend_from_slice(if v.is_sign_negative() { b"-0" } else { b"0" });
    } else if let Some(i) = double2ll(v) {
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{i}");
    } else {
        out.extend_from_slice(format_g17(v).as_bytes());
    }
}

/// A zset score as the server writing this RDB version formats it in listpacks and ziplists:
/// Redis 6 (v9) prints integers only below 2^52 and otherwise `%.17g`; Redis 7.0 (v10) is
/// [`d2string`]; Redis 7.2+ and Valkey (v11+) print non-integers with the shortest
/// round-trip digits (`fpconv_dtoa`; its Grisu2 may, rarely, print one digit more).
fn score_string(version: u8, v: f64, out: &mut Vec<u8>) {
    use std::io::Write;
    if !v.is_finite() || v == 0.0 {
        return d2string(v, out);
    }
    match version {
        9 => {
            let limit = 4503599627370496.0; // 2^52
            if v > -(limit - 1.0) && v < limit && v == (v as i64) as f64 {
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{}", v as i64);
            } else {
                out.extend_from_slice(format_g17(v).as_bytes());
            }
        }
        10 => d2string(v, out),
        _ => match double2ll(v) {
            Some(i) => {
                let _ = write!(out, "{i}");
            }
            None => out.extend_from_slice(format_shortest(v).as_bytes()),
        },
    }
}

/// `fpconv_dtoa`'s layout of the shortest round-trip digits of a finite, non-zero value.
fn format_shortest(v: f64) -> String {
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp10: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let nd = digits.len() as i32;
    let k = exp10 - (nd - 1); // value = digits × 10^k
    let e = exp10.abs();
    let mut s = String::new();
    if v < 0.0 {
        s.push('-');
    }
    if k >= 0 && e < nd + 7 {
        s.push_str(&digits);
        s.extend(std::iter::repeat_n('0', k as usize));
    } else if k < 0 && (k > -7 || e < 4) {
        let offset = nd + k;
        if offset <= 0 {
            s.push_str("0.");
            s.extend(std::iter::repeat_n('0', (-offset) as usize));
            s.push_str(&digits);
        } else {
            s.push_str(&digits[..offset as usize]);
            s.push('.');
            s.push_str(&digits[offset as usize..]);
        }
    } else {
        s.push_str(&digits[..1]);
        if nd > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if exp10 < 0 { '-' } else { '+' });
        s.push_str(&e.to_string());
    }
    s
}

/// Redis's `double2ll`: the value as an integer if it is integral and within ±(2^63 − 1) / 2.
fn double2ll(v: f64) -> Option<i64> {
    let limit = (i64::MAX / 2) as f64;
    if !(-limit..=limit).contains(&v) {
        return None;
    }
    let i = v as i64;
    (i as f64 == v).then_some(i)
}

/// C's `%.17g` for a finite, non-zero value.
fn format_g17(v: f64) -> String {
    const P: i32 = 17;
    let sci = format!("{:.*e}", (P - 1) as usize, v);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..P).contains(&exp) {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let fixed = format!("{:.*}", (P - 1 - exp) as usize, v);
        strip_zeros(&fixed).to_string()
    }
}

/// Removes trailing zeros after a decimal point, and the point if nothing follows it.
fn strip_zeros(s: &str) -> &str {
    if !s.contains('.') {
        return s;
    }
    s.trim_end_matches('0').trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn score(version: u8, v: f64) -> String {
        let mut out = Vec::new();
        score_string(version, v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn score_formats_per_version() {
        assert_eq!(score(10, 0.1), "0.10000000000000001");
        assert_eq!(score(11, 0.1), "0.1");
        assert_eq!(score(11, -2.5e-10), "-2.5e-10");
        assert_eq!(score(11, 1e300), "1e+300");
        assert_eq!(score(11, 1.5), "1.5");
        assert_eq!(score(11, 123456.789), "123456.789");
        assert_eq!(score(11, 1e-5), "0.00001");
        assert_eq!(score(11, 1.25e-7), "1.25e-7");
        assert_eq!(score(11, 1e22), "1e+22");
        assert_eq!(score(11, 4611686018427387904.0), "4611686018427387904");
        assert_eq!(score(10, 4611686018427387904.0), "4611686018427387904");
        assert_eq!(score(9, 4611686018427387904.0), "4.6116860184273879e+18");
        assert_eq!(score(9, 4503599627370495.0), "4503599627370495");
        assert_eq!(score(10, 1e-5), "1.0000000000000001e-05");
        assert_eq!(score(10, 2.5), "2.5");
        for v in [9, 10, 11] {
            assert_eq!(score(v, f64::INFINITY), "inf");
            assert_eq!(score(v, -0.0), "-0");
            assert_eq!(score(v, 7.0), "7");
        }
    }

    fn stream(n: u64, version: u8) -> Stream {
        use crate::rdb::{
            PendingEntry, StreamConsumer, StreamConsumerInfo, StreamGroup, StreamGroupInfo,
            StreamMeta,
        };
        let id = |i: u64| StreamId {
            ms: 1_000 + i / 4,
            seq: i % 4,
        };
        let entries: Vec<StreamEntry> = (0..n)
            .map(|i| StreamEntry {
                id: id(i),
                fields: if i % 5 == 0 {
                    vec![
                        (Bytes::from("k"), Bytes::from("v")),
                        (Bytes::from("k"), Bytes::from(i.to_string())),
                    ]
                } else {
                    vec![
                        (Bytes::from("name"), Bytes::from(format!("n{i}"))),
                        (
                            Bytes::from("big"),
                            Bytes::from("z".repeat((i % 300) as usize)),
                        ),
                    ]
                },
            })
            .collect();
        let last = entries.last().map_or(StreamId { ms: 0, seq: 0 }, |e| e.id);
        let pending: Vec<PendingEntry> = (0..n.min(6))
            .map(|i| PendingEntry {
                id: id(i),
                delivery_time_ms: 1_700_000_000_000 + i as i64,
                delivery_count: i + 1,
            })
            .collect();
        let consumer = StreamConsumer {
            info: StreamConsumerInfo {
                name: Bytes::from("alice"),
                seen_time_ms: 1_700_000_000_500,
                active_time_ms: (version >= 11).then_some(1_700_000_000_400),
                pending: pending.len() as u64,
            },
            pending: pending.iter().map(|p| p.id).collect(),
        };
        let group = StreamGroup {
            info: StreamGroupInfo {
                name: Bytes::from("g"),
                last_id: last,
                entries_read: (version >= 10).then_some(n),
                pending: pending.len() as u64,
            },
            pending,
            consumers: vec![consumer],
        };
        Stream {
            entries,
            meta: StreamMeta {
                length: n,
                last_id: last,
                first_id: (version >= 10).then_some(id(0)),
                max_deleted_id: (version >= 10).then_some(StreamId { ms: 0, seq: 0 }),
                entries_added: (version >= 10).then_some(n),
                groups: 1,
            },
            groups: vec![group],
        }
    }

    #[test]
    fn streams_roundtrip_through_the_parser() {
        use crate::rdb::{Collector, Parser, ParserConfig};
        for version in 9..=12 {
            for n in [1, 7, 250] {
                let value = Value::Stream(Box::new(stream(n, version)));
                let mut enc = ObjectEncoder::new(version).unwrap();
                let mut file = format!("REDIS{version:04}").into_bytes();
                file.extend_from_slice(&[0xfe, 0x00]);
                enc.write_object(Some(b"s"), &value, &mut file).unwrap();
                file.push(0xff);
                let crc = crc64(0, &file);
                file.extend_from_slice(&crc.to_le_bytes());
                let mut parser = Parser::new(ParserConfig::default());
                let mut collector = Collector::new(u64::MAX);
                parser.push(&file);
                parser.finish();
                let mut got = None;
                while let Some(ev) = parser.poll_event().unwrap() {
                    if let Some((_, v)) = collector.handle_event(ev).unwrap() {
                        got = Some(v);
                    }
                }
                let Some(Value::Stream(got)) = got else {
                    panic!("no stream parsed");
                };
                let Value::Stream(want) = &value else {
                    unreachable!()
                };
                assert_eq!(got.entries, want.entries, "v{version} n{n}");
                assert_eq!(got.groups, want.groups, "v{version} n{n}");
                assert_eq!(got.meta.last_id, want.meta.last_id);
            }
        }
        // Out-of-order ids are refused.
        let mut bad = stream(3, 10);
        bad.entries.swap(0, 1);
        let err = ObjectEncoder::new(10).unwrap().write_object(
            None,
            &Value::Stream(Box::new(bad)),
            &mut Vec::new(),
        );
        assert!(matches!(err, Err(EncodeError::StreamOrder(_))));
    }

    #[test]
    fn every_format_parses_back() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            for version in [9, 10, 11] {
                let s = score(version, v);
                assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{s}");
            }
        }
    }
}
