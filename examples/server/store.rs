//! The keyspace: 16 databases of typed values with millisecond expiries.
//!
//! Keys and string values are owned byte boxes (one allocation each, no refcount), hashed with a
//! cheap multiply-rotate hash seeded per process. Expiries live inline in each entry and, for
//! active expiry, in an ordered index that holds only the keys that have a TTL.
//!
//! Hash fields may have their own TTL (Redis 7.4+ "hash field expiration"). The TTLs live inside
//! the hash value ([`Hash`]: the field map plus an optional boxed [`FieldTtls`], absent while no
//! field has one), so a copy-on-write snapshot of a shard sees fields and TTLs from the same
//! instant and `Value` stays 24 bytes. Each database also keeps an ordered index of the hashes
//! that have field TTLs, by their earliest field expiry, for active expiry.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

/// An owned byte string: keys, string values and collection elements.
pub type Blob = Box<[u8]>;

/// Upper bound on pre-sizing a table from a size announced by a peer (RESIZEDB).
const MAX_PRESIZE: usize = 1 << 24;

/// The hasher of every table: foldhash (hashbrown's default), seeded per process. On a replica
/// applying a 2M-SET backlog the key-table work (hashing and probing) was over half the time
/// with std's SipHash; foldhash is several times cheaper per key and still keyed per process,
/// so clients cannot aim collisions at it.
pub type FastBuild = foldhash::fast::RandomState;

/// A hash map keyed by byte strings.
pub type FastMap<V> = HashMap<Blob, V, FastBuild>;

/// A key of the keyspace. Keys of up to [`Key::INLINE`] bytes (most real keys) are stored in
/// the table slot itself, so a lookup compares the key without following a pointer: on a
/// replica applying a stream of `SET`s to a million-key table, that pointer was a cache miss
/// per command (a quarter of the apply time). Longer keys are boxed. 24 bytes either way.
/// (`smallvec`'s 24-byte form holds only 16 bytes inline, too few for keys such as
/// `user:session:12345678`.)
#[derive(Clone)]
pub enum Key {
    Inline { len: u8, bytes: [u8; Key::INLINE] },
    Boxed(Blob),
}

impl Key {
    /// The longest key stored inline.
    pub const INLINE: usize = 22;
}

// A slot's key is no bigger inline than boxed.
const _: () = assert!(std::mem::size_of::<Key>() == 24);

impl From<&[u8]> for Key {
    fn from(b: &[u8]) -> Key {
        if b.len() <= Key::INLINE {
            let mut bytes = [0; Key::INLINE];
            bytes[..b.len()].copy_from_slice(b);
            Key::Inline {
                len: b.len() as u8,
                bytes,
            }
        } else {
            Key::Boxed(b.into())
        }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Boxed(b) => b,
        }
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

// Equality and hashing are those of the bytes, as `Borrow` requires: a `&[u8]` finds its `Key`.
impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}
/// A hash set of byte strings.
pub type FastSet = HashSet<Blob, FastBuild>;

/// A stream entry id `ms-seq`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn to_bytes(self) -> Vec<u8> {
        format!("{}-{}", self.ms, self.seq).into_bytes()
    }

    /// Parses `ms-seq` or `ms` (with `seq` defaulting to `default_seq`).
    pub fn parse(s: &[u8], default_seq: u64) -> Option<StreamId> {
        let s = std::str::from_utf8(s).ok()?;
        match s.split_once('-') {
            Some((a, b)) => Some(StreamId {
                ms: a.parse().ok()?,
                seq: b.parse().ok()?,
            }),
            None => Some(StreamId {
                ms: s.parse().ok()?,
                seq: default_seq,
            }),
        }
    }

    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId {
                ms: self.ms,
                seq: self.seq + 1,
            })
        } else if self.ms < u64::MAX {
            Some(StreamId {
                ms: self.ms + 1,
                seq: 0,
            })
        } else {
            None
        }
    }
}

/// One pending entry of a consumer group.
#[derive(Clone, Debug, PartialEq)]
pub struct Pending {
    pub consumer: Blob,
    pub delivery_time: i64,
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Clone, Debug, PartialEq)]
pub struct Consumer {
    pub name: Blob,
    pub seen_time: i64,
    pub pending: BTreeSet<StreamId>,
}

/// A consumer group.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub name: Blob,
    pub last_id: StreamId,
    pub entries_read: i64,
    pub pending: BTreeMap<StreamId, Pending>,
    pub consumers: Vec<Consumer>,
}

/// A stream: entries, the last generated id and consumer groups.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stream {
    pub entries: BTreeMap<StreamId, Vec<(Blob, Blob)>>,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: Vec<Group>,
}

/// A sorted set: member → score, plus the (score, member) order.
#[derive(Clone, Debug, Default)]
pub struct ZSet {
    pub scores: FastMap<f64>,
    pub order: BTreeSet<(Score, Blob)>,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.order == other.order
    }
}

impl ZSet {
    /// Inserts or updates; returns true if the member is new.
    pub fn insert(&mut self, member: &[u8], score: f64) -> bool {
        match self.scores.get_mut(member) {
            Some(old) => {
                if *old != score {
                    let m: Blob = member.into();
                    self.order.remove(&(Score(*old), m.clone()));
                    self.order.insert((Score(score), m));
                    *old = score;
                }
                false
            }
            None => {
                let m: Blob = member.into();
                self.order.insert((Score(score), m.clone()));
                self.scores.insert(m, score);
                true
            }
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(s) => {
                self.order.remove(&(Score(s), member.into()));
                true
            }
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }
}

/// A score with a total order (scores are never NaN in a sorted set).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score(pub f64);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A value this server stores but cannot serve (a module type): kept as its DUMP payload so it
/// can still be replicated and saved.
#[derive(Clone, Debug, PartialEq)]
pub struct Opaque {
    pub type_name: String,
    pub dump: Bytes,
}

/// A hash: its fields, and the expiry (Unix ms) of the fields that have one.
///
/// A field is logically expired when its expiry is strictly before the current time (Redis's
/// `hashTypeIsExpired`); it stays stored until deleted (lazily or actively by a master, by the
/// master's `HDEL` on a replica).
#[derive(Clone, Debug, Default)]
pub struct Hash {
    fields: FastMap<Blob>,
    /// `None` while no field has a TTL (the common case costs one pointer).
    #[allow(clippy::box_collection)]
    ttls: Option<Box<FieldTtls>>,
}

/// The TTLs of a hash's fields: by field, and in expiry order (for the earliest one).
#[derive(Clone, Debug, Default)]
pub struct FieldTtls {
    by_field: FastMap<i64>,
    order: BTreeSet<(i64, Blob)>,
}

impl PartialEq for Hash {
    fn eq(&self, other: &Self) -> bool {
        let ttls = |h: &Hash| {
            h.ttls
                .as_ref()
                .map(|t| &t.order)
                .filter(|o| !o.is_empty())
                .cloned()
        };
        self.fields == other.fields && ttls(self) == ttls(other)
    }
}

impl Hash {
    /// Number of stored fields, logically expired ones included (what `HLEN` counts).
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Pre-sizes for `n` more fields.
    pub fn reserve(&mut self, n: usize) {
        self.fields.reserve(n);
    }

    /// The stored value of `field`, expired or not.
    pub fn get(&self, field: &[u8]) -> Option<&Blob> {
        self.fields.get(field)
    }

    /// The expiry of `field`, if it has one.
    pub fn expire_of(&self, field: &[u8]) -> Option<i64> {
        self.ttls.as_ref()?.by_field.get(field).copied()
    }

    /// Whether `field` is stored and logically expired at `now`.
    pub fn is_expired(&self, field: &[u8], now: i64) -> bool {
        self.expire_of(field).is_some_and(|t| t < now)
    }

    /// Sets `field` and clears its TTL, as `HSET` does. Returns true if the field is new.
    pub fn insert(&mut self, field: &[u8], value: Blob) -> bool {
        self.set_expire(field, None);
        self.insert_keep_ttl(field, value)
    }

    /// Sets `field`, keeping its TTL if it has one (`HINCRBY`, `HSETEX KEEPTTL`). Returns true
    /// if the field is new.
    pub fn insert_keep_ttl(&mut self, field: &[u8], value: Blob) -> bool {
        match self.fields.get_mut(field) {
            Some(v) => {
                *v = value;
                false
            }
            None => {
                self.fields.insert(field.into(), value);
                true
            }
        }
    }

    /// Sets `field` with an expiry, for loading (the field is new or replaced whole).
    pub fn insert_with_expire(&mut self, field: Blob, value: Blob, expire: Option<i64>) {
        let f = field.clone();
        self.fields.insert(field, value);
        self.set_expire(&f, expire);
    }

    /// Removes `field` and its TTL; returns its value.
    pub fn remove(&mut self, field: &[u8]) -> Option<Blob> {
        self.set_expire(field, None);
        self.fields.remove(field)
    }

    /// Sets or clears the TTL of `field` (which must be stored: a TTL is never kept for a
    /// missing field). Returns false if the field is not stored.
    pub fn set_expire(&mut self, field: &[u8], expire: Option<i64>) -> bool {
        if !self.fields.contains_key(field) {
            return false;
        }
        if let Some(t) = &mut self.ttls {
            if let Some(old) = t.by_field.remove(field) {
                t.order.remove(&(old, field.into()));
            }
        }
        match expire {
            Some(at) => {
                let t = self.ttls.get_or_insert_with(Box::default);
                t.by_field.insert(field.into(), at);
                t.order.insert((at, field.into()));
            }
            None => {
                if self.ttls.as_ref().is_some_and(|t| t.by_field.is_empty()) {
                    self.ttls = None;
                }
            }
        }
        true
    }

    /// The earliest field expiry, if any field has one.
    pub fn min_expire(&self) -> Option<i64> {
        Some(self.ttls.as_ref()?.order.first()?.0)
    }

    /// Number of fields with a TTL.
    pub fn ttl_count(&self) -> usize {
        self.ttls.as_ref().map_or(0, |t| t.by_field.len())
    }

    /// Up to `limit` fields logically expired at `now`, earliest first.
    pub fn expired_fields(&self, now: i64, limit: usize) -> Vec<Blob> {
        let Some(t) = &self.ttls else {
            return Vec::new();
        };
        t.order
            .iter()
            .take_while(|(at, _)| *at < now)
            .take(limit)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Every stored field with its value and expiry (expired ones included).
    pub fn iter(&self) -> impl Iterator<Item = (&Blob, &Blob, Option<i64>)> {
        self.fields
            .iter()
            .map(move |(f, v)| (f, v, self.expire_of(f)))
    }

    /// The fields not expired at `now`, with their values.
    pub fn live(&self, now: i64) -> impl Iterator<Item = (&Blob, &Blob)> {
        self.fields
            .iter()
            .filter(move |(f, _)| !self.is_expired(f, now))
    }
}

/// A typed value. Aggregates are boxed so that a value is 24 bytes and the keyspace table
/// stays small (strings, the common case, need no second allocation besides their bytes).
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::box_collection)] // deliberate: keeps `Value` at 24 bytes
pub enum Value {
    Str(Blob),
    List(Box<VecDeque<Blob>>),
    Set(Box<FastSet>),
    Hash(Box<Hash>),
    ZSet(Box<ZSet>),
    Stream(Box<Stream>),
    Opaque(Box<Opaque>),
}

impl Value {
    /// The name TYPE replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Hash(_) => "hash",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
            Value::Opaque(_) => "none",
        }
    }

    /// Whether an aggregate became empty (Redis deletes empty aggregates).
    pub fn is_empty_aggregate(&self) -> bool {
        match self {
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::ZSet(z) => z.len() == 0,
            _ => false,
        }
    }
}

/// One key's value and absolute expiry in Unix milliseconds.
#[derive(Clone, Debug)]
pub struct Entry {
    pub value: Value,
    pub expire: Option<i64>,
}

/// Shards per database. A snapshot shares the shards (one `Arc` clone each); a write to a shard
/// the snapshot still holds copies that shard once (1/256 of the database), like the pages a
/// forked Redis child shares with its parent.
const SHARDS: usize = 256;

/// One shard of a database's keys.
pub type Shard = HashMap<Key, Entry, FastBuild>;

/// The shard a key lives in (FNV-1a: cheap, and only the spread matters, not secrecy: the
/// tables inside each shard are SipHash-keyed).
fn shard_of(key: &[u8]) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h as usize) % SHARDS
}

/// One database: its keys in [`SHARDS`] copy-on-write shards, an ordered index of the keys
/// that have a TTL, and an ordered index of the hashes that have field TTLs (by their earliest
/// field expiry; exact: every change of a hash's field TTLs goes through
/// [`Db::reindex_hash`]).
pub struct Db {
    shards: Vec<Arc<Shard>>,
    len: usize,
    expires: BTreeSet<(i64, Blob)>,
    hexpires: BTreeSet<(i64, Blob)>,
    /// The time each hash of `hexpires` is indexed under.
    hexpire_of: FastMap<i64>,
}

impl Default for Db {
    fn default() -> Self {
        Db {
            shards: (0..SHARDS).map(|_| Arc::new(Shard::default())).collect(),
            len: 0,
            expires: BTreeSet::new(),
            hexpires: BTreeSet::new(),
            hexpire_of: FastMap::default(),
        }
    }
}

/// A point-in-time view of one database, cheap to take (one `Arc` clone per shard) and
/// readable from another thread while clients keep writing.
pub struct DbSnapshot {
    shards: Vec<Arc<Shard>>,
    len: usize,
    expires: usize,
    field_ttl_hashes: usize,
}

impl DbSnapshot {
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of keys with a TTL.
    pub fn expires_len(&self) -> usize {
        self.expires
    }

    /// Number of hashes with at least one field TTL.
    pub fn field_ttl_hashes(&self) -> usize {
        self.field_ttl_hashes
    }

    /// The shards, borrowed.
    pub fn shards(&self) -> impl Iterator<Item = &Shard> {
        self.shards.iter().map(|s| &**s)
    }

    /// Hands out the shards one by one, dropping each reference as soon as the caller is done
    /// with it, so writes to shards already saved no longer copy.
    pub fn into_shards(self) -> impl Iterator<Item = Arc<Shard>> {
        self.shards.into_iter()
    }
}

impl Db {
    /// Number of keys (including logically expired ones not yet removed).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of keys with a TTL.
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// The database as it is now (see [`DbSnapshot`]).
    pub fn snapshot(&self) -> DbSnapshot {
        DbSnapshot {
            shards: self.shards.clone(),
            len: self.len,
            expires: self.expires.len(),
            field_ttl_hashes: self.hexpire_of.len(),
        }
    }

    /// Brings the field-expiry index up to date for `key` after its value changed: indexed
    /// under its earliest field expiry if it is a hash with field TTLs, absent otherwise.
    pub fn reindex_hash(&mut self, key: &[u8]) {
        let min = match self.raw(key).map(|e| &e.value) {
            Some(Value::Hash(h)) => h.min_expire(),
            _ => None,
        };
        let old = self.hexpire_of.get(key).copied();
        if old == min {
            return;
        }
        if let Some(t) = old {
            self.hexpires.remove(&(t, key.into()));
            self.hexpire_of.remove(key);
        }
        if let Some(t) = min {
            self.hexpires.insert((t, key.into()));
            self.hexpire_of.insert(key.into(), t);
        }
    }

    /// [`Db::reindex_hash`] only when it can matter: the index is not empty, or `value` is a
    /// hash with field TTLs (keeps the string path free of a second lookup).
    fn reindex_if_needed(&mut self, key: &[u8], value_has_ttls: bool) {
        if value_has_ttls || (!self.hexpire_of.is_empty() && self.indexed(key)) {
            self.reindex_hash(key);
        }
    }

    /// Deletes the fields of hashes whose expiry is before `now` (at most `limit` fields), as a
    /// master's active expiry does. A hash left empty is deleted. Returns each hash's name
    /// with the fields deleted from it, for the `HDEL`s the stream carries.
    pub fn expire_fields_due(&mut self, now: i64, limit: usize) -> Vec<(Blob, Vec<Blob>)> {
        let mut out = Vec::new();
        let mut budget = limit;
        while budget > 0 {
            let Some((t, key)) = self.hexpires.first().cloned() else {
                break;
            };
            if t >= now {
                break;
            }
            let fields = match self.shard_mut(&key).get_mut(&*key).map(|e| &mut e.value) {
                Some(Value::Hash(h)) => {
                    let fields = h.expired_fields(now, budget);
                    for f in &fields {
                        h.remove(f);
                    }
                    fields
                }
                _ => Vec::new(),
            };
            budget = budget.saturating_sub(fields.len().max(1));
            if self.raw(&key).is_some_and(|e| e.value.is_empty_aggregate()) {
                self.remove(&key);
            } else {
                self.reindex_hash(&key);
            }
            if !fields.is_empty() {
                out.push((key, fields));
            }
        }
        out
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        &self.shards[shard_of(key)]
    }

    fn shard_mut(&mut self, key: &[u8]) -> &mut Shard {
        Arc::make_mut(&mut self.shards[shard_of(key)])
    }

    /// Pre-sizes the tables for `n` more keys (capped).
    pub fn reserve(&mut self, n: u64) {
        let n = usize::try_from(n).unwrap_or(MAX_PRESIZE).min(MAX_PRESIZE);
        for shard in &mut self.shards {
            Arc::make_mut(shard).reserve(n / SHARDS);
        }
    }

    pub fn clear(&mut self) {
        *self = Db::default();
    }

    /// Raw lookup ignoring expiry.
    pub fn raw(&self, key: &[u8]) -> Option<&Entry> {
        self.shard(key).get(key)
    }

    /// Looks a key up, treating an expired key as missing.
    pub fn get(&self, key: &[u8], now: i64) -> Option<&Entry> {
        self.raw(key).filter(|e| !is_expired(e, now))
    }

    /// Mutable lookup, treating an expired key as missing.
    pub fn get_mut(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        self.get(key, now)?;
        self.shard_mut(key).get_mut(key)
    }

    /// Inserts or replaces a key with its expiry.
    pub fn set(&mut self, key: &[u8], value: Value, expire: Option<i64>) {
        let ttls = has_field_ttls(&value);
        self.set_value(key, value, expire);
        self.reindex_if_needed(key, ttls);
    }

    /// Replaces `key` with the string `value`. An old string of the same length is
    /// overwritten in place: no free and no allocation, and the old bytes are only written,
    /// never read (freeing them would read the allocator's header next to them: a cache miss
    /// per command on a replica applying a stream of `SET`s to a large table).
    pub fn set_string(&mut self, key: &[u8], value: &[u8], expire: Option<i64>) {
        let shard = Arc::make_mut(&mut self.shards[shard_of(key)]);
        if let Some(e) = shard.get_mut(key) {
            if let Value::Str(old) = &mut e.value {
                if old.len() == value.len() {
                    old.copy_from_slice(value);
                    let was = std::mem::replace(&mut e.expire, expire);
                    self.reindex_expire(key, was, expire);
                    return;
                }
            }
        }
        self.set(key, Value::Str(value.into()), expire);
    }

    fn set_value(&mut self, key: &[u8], value: Value, expire: Option<i64>) {
        // One probe: overwrite in place when the key exists (the common case of a stream of
        // SETs), else insert.
        let shard = Arc::make_mut(&mut self.shards[shard_of(key)]);
        if let Some(e) = shard.get_mut(key) {
            let was = std::mem::replace(&mut e.expire, expire);
            e.value = value;
            self.reindex_expire(key, was, expire);
            return;
        }
        shard.insert(key.into(), Entry { value, expire });
        self.len += 1;
        self.reindex_expire(key, None, expire);
    }

    /// Moves `key` in the expiry index from `was` to `now_at` (either may be none).
    fn reindex_expire(&mut self, key: &[u8], was: Option<i64>, now_at: Option<i64>) {
        if was == now_at {
            return;
        }
        if let Some(t) = was {
            self.expires.remove(&(t, key.into()));
        }
        if let Some(t) = now_at {
            self.expires.insert((t, key.into()));
        }
    }

    /// Inserts a key during snapshot loading: one hash lookup, no expiry bookkeeping for keys
    /// without a TTL. Returns false if the key was already present (it is replaced).
    pub fn load(&mut self, key: Blob, value: Value, expire: Option<i64>) -> bool {
        if !has_field_ttls(&value) && !self.indexed(&key) {
            return self.load_value(key, value, expire);
        }
        let k = key.clone();
        let new = self.load_value(key, value, expire);
        self.reindex_hash(&k);
        new
    }

    /// Whether `key` is in the field-expiry index.
    fn indexed(&self, key: &[u8]) -> bool {
        !self.hexpire_of.is_empty() && self.hexpire_of.contains_key(key)
    }

    fn load_value(&mut self, key: Blob, value: Value, expire: Option<i64>) -> bool {
        use std::collections::hash_map::Entry as Slot;
        if let Some(t) = expire {
            self.expires.insert((t, key.clone()));
        }
        let idx = shard_of(&key);
        let shard = Arc::make_mut(&mut self.shards[idx]);
        match shard.entry(Key::from(&*key)) {
            Slot::Occupied(mut o) => {
                if let Some(t) = o.get().expire.filter(|t| Some(*t) != expire) {
                    self.expires.remove(&(t, key));
                }
                o.insert(Entry { value, expire });
                false
            }
            Slot::Vacant(v) => {
                v.insert(Entry { value, expire });
                self.len += 1;
                true
            }
        }
    }

    /// Changes only the expiry of an existing key.
    pub fn set_expire(&mut self, key: &[u8], expire: Option<i64>) -> bool {
        let Some(old) = self.raw(key).map(|e| e.expire) else {
            return false;
        };
        if let Some(old) = old {
            self.expires.remove(&(old, key.into()));
        }
        if let Some(t) = expire {
            self.expires.insert((t, key.into()));
        }
        if let Some(e) = self.shard_mut(key).get_mut(key) {
            e.expire = expire;
        }
        true
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        self.raw(key)?;
        let e = self.shard_mut(key).remove(key)?;
        self.len -= 1;
        if let Some(t) = e.expire {
            self.expires.remove(&(t, key.into()));
        }
        self.reindex_if_needed(key, false);
        Some(e)
    }

    /// Removes up to `limit` keys whose expiry is at or before `now`; returns their names.
    pub fn expire_due(&mut self, now: i64, limit: usize) -> Vec<Blob> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some((t, _)) = self.expires.first() else {
                break;
            };
            if *t > now {
                break;
            }
            let t = *t;
            let Some((_, key)) = self.expires.pop_first() else {
                break;
            };
            if self.raw(&key).is_some_and(|e| e.expire == Some(t)) {
                self.shard_mut(&key).remove(&*key);
                self.len -= 1;
                self.reindex_if_needed(&key, false);
                out.push(key);
            }
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.shards
            .iter()
            .flat_map(|s| s.iter().map(|(k, e)| (&**k, e)))
    }
}

/// Whether `v` is a hash with at least one field TTL.
fn has_field_ttls(v: &Value) -> bool {
    matches!(v, Value::Hash(h) if h.ttl_count() > 0)
}

/// Whether an entry is logically expired at `now` (Unix ms).
pub fn is_expired(e: &Entry, now: i64) -> bool {
    e.expire.is_some_and(|t| t <= now)
}

/// All databases.
pub struct Store {
    pub dbs: Vec<Db>,
}

impl Store {
    /// Every database as it is now, for a snapshot written on another thread.
    pub fn snapshot(&self) -> Vec<DbSnapshot> {
        self.dbs.iter().map(Db::snapshot).collect()
    }

    pub fn new(n: usize) -> Store {
        Store {
            dbs: (0..n).map(|_| Db::default()).collect(),
        }
    }

    pub fn flush_all(&mut self) {
        for db in &mut self.dbs {
            db.clear();
        }
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_inline_and_boxed_are_found_by_their_bytes() {
        let mut db = Db::default();
        let short = [b'k'; Key::INLINE];
        let long = [b'k'; Key::INLINE + 1];
        assert!(matches!(Key::from(&short[..]), Key::Inline { .. }));
        assert!(matches!(Key::from(&long[..]), Key::Boxed(_)));
        for k in [&b""[..], &short[..], &long[..], &short[..3]] {
            db.set_string(k, k, None);
        }
        assert_eq!(db.len(), 4);
        for k in [&b""[..], &short[..], &long[..], &short[..3]] {
            let Some(Entry {
                value: Value::Str(v),
                ..
            }) = db.raw(k)
            else {
                panic!("{k:?} missing")
            };
            assert_eq!(&v[..], k);
        }
        let mut keys: Vec<&[u8]> = db.iter().map(|(k, _)| k).collect();
        keys.sort();
        assert_eq!(keys, [&b""[..], &short[..3], &short[..], &long[..]]);
    }

    #[test]
    fn set_string_in_place_keeps_the_expiry_index_exact() {
        let mut db = Db::default();
        db.set_string(b"a", b"11", Some(100));
        // Same length: overwritten in place, with a new TTL, then none.
        db.set_string(b"a", b"22", Some(200));
        assert_eq!(db.expires_len(), 1);
        assert!(db.expire_due(150, 10).is_empty());
        db.set_string(b"a", b"33", None);
        assert_eq!(db.expires_len(), 0);
        assert!(db.expire_due(1000, 10).is_empty());
        // Another length, and over a value of another type: replaced.
        db.set_string(b"a", b"4444", Some(300));
        db.set(b"l", Value::List(Box::default()), None);
        db.set_string(b"l", b"55", None);
        assert!(
            matches!(db.raw(b"l"), Some(Entry { value: Value::Str(v), .. }) if &v[..] == b"55")
        );
        assert_eq!(db.expire_due(300, 10), vec![Blob::from(&b"a"[..])]);
        assert_eq!(db.len(), 1);
        // A snapshot taken before an in-place overwrite keeps the old bytes.
        let snap = db.snapshot();
        db.set_string(b"l", b"66", None);
        let old = snap
            .shards()
            .find_map(|s| s.get(&b"l"[..]))
            .map(|e| &e.value);
        assert!(matches!(old, Some(Value::Str(v)) if &v[..] == b"55"));
        assert!(
            matches!(db.raw(b"l"), Some(Entry { value: Value::Str(v), .. }) if &v[..] == b"66")
        );
    }

    #[test]
    fn expiry_index_follows_updates() {
        let mut db = Db::default();
        db.set(b"a", Value::Str((*b"1").into()), Some(100));
        db.set(b"a", Value::Str((*b"2").into()), Some(200));
        db.set(b"b", Value::Str((*b"3").into()), None);
        assert_eq!(db.expires_len(), 1);
        assert!(db.expire_due(150, 10).is_empty());
        assert_eq!(db.expire_due(200, 10), vec![Blob::from(&b"a"[..])]);
        assert_eq!(db.len(), 1);
        assert!(db.get(b"b", 1000).is_some());
    }

    #[test]
    fn field_ttls_live_in_the_value_and_an_exact_index() {
        let mut db = Db::default();
        let mut h = Hash::default();
        h.insert_with_expire((*b"a").into(), (*b"1").into(), Some(100));
        h.insert_with_expire((*b"b").into(), (*b"2").into(), Some(50));
        h.insert_with_expire((*b"c").into(), (*b"3").into(), None);
        assert_eq!((h.min_expire(), h.ttl_count()), (Some(50), 2));
        db.set(b"h", Value::Hash(Box::new(h)), None);
        let snap = db.snapshot();
        assert_eq!(snap.field_ttl_hashes(), 1);
        // Nothing due before 50; at 101 both TTL'd fields go, the hash stays with `c`.
        assert!(db.expire_fields_due(50, 10).is_empty());
        let due = db.expire_fields_due(101, 10);
        assert_eq!(
            due,
            vec![(
                Blob::from(&b"h"[..]),
                vec![Blob::from(&b"b"[..]), Blob::from(&b"a"[..])]
            )]
        );
        assert_eq!(db.snapshot().field_ttl_hashes(), 0);
        // The snapshot taken before still sees the fields and TTLs of its instant.
        let old: Vec<_> = snap.shards().flat_map(|s| s.values()).collect();
        assert!(
            matches!(&old[0].value, Value::Hash(h) if h.len() == 3 && h.expire_of(b"a") == Some(100))
        );
        // A hash whose last field expires is deleted; replacing or deleting a key unindexes it.
        let mut h = Hash::default();
        h.insert_with_expire((*b"x").into(), (*b"1").into(), Some(10));
        db.set(b"g", Value::Hash(Box::new(h.clone())), None);
        assert_eq!(db.expire_fields_due(11, 10).len(), 1);
        assert!(db.raw(b"g").is_none());
        db.set(b"g", Value::Hash(Box::new(h.clone())), None);
        db.set(b"g", Value::Str((*b"s").into()), None);
        db.load(b"k".to_vec().into(), Value::Hash(Box::new(h)), None);
        db.remove(b"k");
        assert_eq!(db.snapshot().field_ttl_hashes(), 0);
        assert!(db.expire_fields_due(i64::MAX, 10).is_empty());
    }

    #[test]
    fn hash_set_clears_or_keeps_ttl() {
        let mut h = Hash::default();
        assert!(h.insert(b"f", (*b"1").into()));
        assert!(h.set_expire(b"f", Some(5)));
        assert!(!h.set_expire(b"missing", Some(5)));
        assert!(!h.insert_keep_ttl(b"f", (*b"2").into()));
        assert_eq!(h.expire_of(b"f"), Some(5));
        assert!(h.is_expired(b"f", 6) && !h.is_expired(b"f", 5));
        assert!(!h.insert(b"f", (*b"3").into()));
        assert_eq!((h.expire_of(b"f"), h.ttl_count()), (None, 0));
        h.set_expire(b"f", Some(7));
        assert!(h.remove(b"f").is_some());
        assert_eq!((h.min_expire(), h.len()), (None, 0));
        assert_eq!(std::mem::size_of::<Value>(), 24);
    }

    #[test]
    fn zset_orders_by_score_then_member() {
        let mut z = ZSet::default();
        assert!(z.insert(b"b", 1.0));
        assert!(z.insert(b"a", 1.0));
        assert!(z.insert(b"c", 0.5));
        assert!(!z.insert(b"c", 2.0));
        let order: Vec<&[u8]> = z.order.iter().map(|(_, m)| &m[..]).collect();
        assert_eq!(order, vec![&b"a"[..], b"b", b"c"]);
        assert!(z.remove(b"a"));
        assert_eq!(z.len(), 2);
    }
}
