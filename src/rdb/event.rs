//! The events a [`Parser`](super::Parser) produces, and the small types they carry.

use std::fmt;

use bytes::Bytes;

use super::raw::RawValue;

/// The magic string at the start of a file; it decides what some ambiguous codes mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Magic {
    /// `REDIS` followed by four decimal digits (Redis, and Valkey up to 8.x).
    Redis,
    /// `VALKEY` followed by three decimal digits (Valkey 9 and later).
    Valkey,
}

impl Magic {
    /// The magic as it is written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Magic::Redis => "REDIS",
            Magic::Valkey => "VALKEY",
        }
    }

    /// The newest version this crate knows for this magic: 13 for `REDIS` (`REDIS0013`,
    /// Redis 8.6) and 80 for `VALKEY` (`VALKEY080`, Valkey 9.0/9.1). A newer version is an
    /// [`RdbError::UnsupportedVersion`](super::RdbError::UnsupportedVersion) unless
    /// [`ParserConfig::allow_newer_versions`](super::ParserConfig::allow_newer_versions) is on.
    ///
    /// ```
    /// use respsync::rdb::Magic;
    ///
    /// assert_eq!(Magic::Redis.newest_version(), 13);
    /// assert_eq!(Magic::Valkey.newest_version(), 80);
    /// ```
    pub fn newest_version(self) -> u32 {
        match self {
            Magic::Redis => 13,
            Magic::Valkey => 80,
        }
    }
}

impl fmt::Display for Magic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of value a key holds, independent of how it is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValueType {
    /// A byte string.
    String,
    /// A list of byte strings.
    List,
    /// A set of byte strings.
    Set,
    /// A sorted set: members with `f64` scores.
    Zset,
    /// A hash: fields with values and, since Redis 7.4, optional per-field expiry.
    Hash,
    /// A stream with its consumer groups.
    Stream,
    /// A module value, passed through as raw bytes.
    Module,
}

impl ValueType {
    /// The name Redis' `TYPE` command returns (`"module"` for module values).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::List => "list",
            ValueType::Set => "set",
            ValueType::Zset => "zset",
            ValueType::Hash => "hash",
            ValueType::Stream => "stream",
            ValueType::Module => "module",
        }
    }
}

/// An RDB object type: the type byte of a key record, i.e. value type plus encoding.
///
/// Some bytes mean different things in Redis and Valkey files; [`ObjectKind::from_type_byte`]
/// resolves them by the file's [`Magic`].
///
/// ```
/// use respsync::rdb::{Magic, ObjectKind, ValueType};
///
/// let kind = ObjectKind::from_type_byte(18, Magic::Redis).unwrap();
/// assert_eq!(kind, ObjectKind::ListQuicklist2);
/// assert_eq!(kind.value_type(), ValueType::List);
/// assert_eq!(kind.type_byte(), 18);
/// assert_eq!(ObjectKind::from_type_byte(22, Magic::Valkey), Some(ObjectKind::HashValkey2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// 0: a string (raw, integer or LZF encoded).
    String,
    /// 1: a linked list, one string per element.
    List,
    /// 2: a hash-table set, one string per member.
    Set,
    /// 3: a skiplist sorted set with scores as decimal text.
    Zset,
    /// 4: a hash table, field and value strings.
    Hash,
    /// 5: a skiplist sorted set with binary `f64` scores (RDB 8+).
    Zset2,
    /// 6: a module value in the pre-GA format; cannot be parsed without the module.
    ModulePreGa,
    /// 7: a module value annotated with opcodes (passed through raw).
    Module2,
    /// 9: a hash stored as a zipmap.
    HashZipmap,
    /// 10: a list stored as one ziplist.
    ListZiplist,
    /// 11: a set of integers stored as an intset.
    SetIntset,
    /// 12: a sorted set stored as a ziplist.
    ZsetZiplist,
    /// 13: a hash stored as a ziplist.
    HashZiplist,
    /// 14: a quicklist of ziplists.
    ListQuicklist,
    /// 15: a stream of listpacks, version 1.
    StreamListpacks,
    /// 16: a hash stored as a listpack (RDB 10+).
    HashListpack,
    /// 17: a sorted set stored as a listpack (RDB 10+).
    ZsetListpack,
    /// 18: a quicklist of listpacks and plain nodes (RDB 10+).
    ListQuicklist2,
    /// 19: a stream of listpacks, version 2 (RDB 10+).
    StreamListpacks2,
    /// 20: a set stored as a listpack (RDB 11+).
    SetListpack,
    /// 21: a stream of listpacks, version 3 (RDB 11+).
    StreamListpacks3,
    /// 26 in a `REDIS` file: a stream of listpacks, version 4, with the idempotent-producer
    /// (IDMP) trailer (Redis 8.6, RDB 13).
    StreamListpacks4,
    /// 22 in a `REDIS` file: hash with field TTLs, Redis 7.4 release-candidate layout.
    HashMetadataPreGa,
    /// 23 in a `REDIS` file: listpack hash with field TTLs, Redis 7.4 release-candidate layout.
    HashListpackExPreGa,
    /// 24: hash table with per-field TTLs (Redis 7.4+).
    HashMetadata,
    /// 25: listpack hash with per-field TTLs (Redis 7.4+).
    HashListpackEx,
    /// 22 in a `VALKEY` file: Valkey 9's hash with per-field TTLs.
    HashValkey2,
}

impl ObjectKind {
    /// The kind a type byte stands for in a file with this magic, if it is one this parser knows.
    pub fn from_type_byte(byte: u8, magic: Magic) -> Option<Self> {
        use ObjectKind::*;
        Some(match (byte, magic) {
            (0, _) => String,
            (1, _) => List,
            (2, _) => Set,
            (3, _) => Zset,
            (4, _) => Hash,
            (5, _) => Zset2,
            (6, _) => ModulePreGa,
            (7, _) => Module2,
            (9, _) => HashZipmap,
            (10, _) => ListZiplist,
            (11, _) => SetIntset,
            (12, _) => ZsetZiplist,
            (13, _) => HashZiplist,
            (14, _) => ListQuicklist,
            (15, _) => StreamListpacks,
            (16, _) => HashListpack,
            (17, _) => ZsetListpack,
            (18, _) => ListQuicklist2,
            (19, _) => StreamListpacks2,
            (20, _) => SetListpack,
            (21, _) => StreamListpacks3,
            (22, Magic::Redis) => HashMetadataPreGa,
            (22, Magic::Valkey) => HashValkey2,
            (23, Magic::Redis) => HashListpackExPreGa,
            (24, Magic::Redis) => HashMetadata,
            (25, Magic::Redis) => HashListpackEx,
            (26, Magic::Redis) => StreamListpacks4,
            _ => return None,
        })
    }

    /// The type byte written in the file for this kind.
    pub fn type_byte(self) -> u8 {
        use ObjectKind::*;
        match self {
            String => 0,
            List => 1,
            Set => 2,
            Zset => 3,
            Hash => 4,
            Zset2 => 5,
            ModulePreGa => 6,
            Module2 => 7,
            HashZipmap => 9,
            ListZiplist => 10,
            SetIntset => 11,
            ZsetZiplist => 12,
            HashZiplist => 13,
            ListQuicklist => 14,
            StreamListpacks => 15,
            HashListpack => 16,
            ZsetListpack => 17,
            ListQuicklist2 => 18,
            StreamListpacks2 => 19,
            SetListpack => 20,
            StreamListpacks3 => 21,
            StreamListpacks4 => 26,
            HashMetadataPreGa | HashValkey2 => 22,
            HashListpackExPreGa => 23,
            HashMetadata => 24,
            HashListpackEx => 25,
        }
    }

    /// The logical type of values of this kind.
    pub fn value_type(self) -> ValueType {
        use ObjectKind::*;
        match self {
            String => ValueType::String,
            List | ListZiplist | ListQuicklist | ListQuicklist2 => ValueType::List,
            Set | SetIntset | SetListpack => ValueType::Set,
            Zset | Zset2 | ZsetZiplist | ZsetListpack => ValueType::Zset,
            Hash | HashZipmap | HashZiplist | HashListpack | HashMetadataPreGa
            | HashListpackExPreGa | HashMetadata | HashListpackEx | HashValkey2 => ValueType::Hash,
            StreamListpacks | StreamListpacks2 | StreamListpacks3 | StreamListpacks4 => {
                ValueType::Stream
            }
            ModulePreGa | Module2 => ValueType::Module,
        }
    }

    /// A short name for the encoding, e.g. `"quicklist2"` or `"listpack"`.
    pub fn encoding_name(self) -> &'static str {
        use ObjectKind::*;
        match self {
            String => "string",
            List => "linkedlist",
            Set | Hash => "hashtable",
            Zset | Zset2 => "skiplist",
            ModulePreGa => "module-pre-ga",
            Module2 => "module",
            HashZipmap => "zipmap",
            ListZiplist | ZsetZiplist | HashZiplist => "ziplist",
            SetIntset => "intset",
            ListQuicklist => "quicklist",
            ListQuicklist2 => "quicklist2",
            StreamListpacks => "listpacks",
            StreamListpacks2 => "listpacks2",
            StreamListpacks3 => "listpacks3",
            StreamListpacks4 => "listpacks4",
            HashListpack | ZsetListpack | SetListpack => "listpack",
            HashMetadataPreGa => "metadata-pre-ga",
            HashListpackExPreGa => "listpack-ex-pre-ga",
            HashMetadata => "metadata",
            HashListpackEx => "listpack-ex",
            HashValkey2 => "valkey-hash2",
        }
    }
}

/// A key's expiry time, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Expiry {
    /// `EXPIRETIME` (0xFD): seconds since the Unix epoch, used by RDB < 3 files.
    Seconds(i32),
    /// `EXPIRETIME_MS` (0xFC): milliseconds since the Unix epoch.
    Milliseconds(i64),
}

impl Expiry {
    /// The expiry in milliseconds since the Unix epoch.
    pub fn as_millis(self) -> i64 {
        match self {
            Expiry::Seconds(s) => i64::from(s) * 1000,
            Expiry::Milliseconds(ms) => ms,
        }
    }
}

/// A module type id: nine characters of name and a 10-bit encoding version packed in 64 bits.
///
/// ```
/// use respsync::rdb::ModuleId;
///
/// let id = ModuleId::from_name("hellotype", 0).unwrap();
/// assert_eq!(id.name(), "hellotype");
/// assert_eq!(id.encver(), 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModuleId(pub u64);

const MODULE_CHARSET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl ModuleId {
    /// The nine-character module type name.
    pub fn name(self) -> String {
        (0..9)
            .rev()
            .map(|i| MODULE_CHARSET[((self.0 >> (10 + 6 * i)) & 63) as usize] as char)
            .collect()
    }

    /// The module's encoding version (0–1023).
    pub fn encver(self) -> u16 {
        (self.0 & 1023) as u16
    }

    /// Builds an id from a nine-character name in the module alphabet and an encoding
    /// version; `None` if the name or version is invalid.
    pub fn from_name(name: &str, encver: u16) -> Option<Self> {
        if name.len() != 9 || encver > 1023 {
            return None;
        }
        let mut id = 0u64;
        for b in name.bytes() {
            let idx = MODULE_CHARSET.iter().position(|&c| c == b)?;
            id = (id << 6) | idx as u64;
        }
        Some(ModuleId((id << 10) | u64::from(encver)))
    }
}

/// A stream entry id, `ms-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// Decodes the 16-byte big-endian form used for node keys and PEL entries.
    pub fn from_be_bytes(b: [u8; 16]) -> Self {
        let mut ms = [0u8; 8];
        let mut seq = [0u8; 8];
        ms.copy_from_slice(&b[..8]);
        seq.copy_from_slice(&b[8..]);
        StreamId {
            ms: u64::from_be_bytes(ms),
            seq: u64::from_be_bytes(seq),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Everything known about a key when its record starts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The database selected by the last `SELECTDB` (0 before any).
    pub db: u64,
    /// The key.
    pub key: Bytes,
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
    /// How many items the record declares right after its key, for the encodings that store
    /// a count there: elements of a linked list (type 1) or hash-table set, members of a
    /// skiplist zset, fields of a hash table (also Valkey 9's and Redis 7.4 release
    /// candidates' hash tables with field TTLs); **nodes** of a quicklist (the element count
    /// of a quicklist is not stored). `None` for strings, single-blob encodings (ziplist,
    /// listpack, intset, zipmap), streams, modules and Redis 7.4's type-24 hashes (their
    /// minimum expiry comes first). Taken from the file, so not trusted: the parser still
    /// reads and checks every item.
    pub len: Option<u64>,
}

impl KeyInfo {
    /// Key information with no expiry, LRU/LFU data or metadata, at offset 0.
    pub fn new(db: u64, key: Bytes, kind: ObjectKind) -> Self {
        KeyInfo {
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
}

/// A function as stored by Redis 7.0 release candidates (`FUNCTION_PRE_GA`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PreGaFunction {
    /// Function name.
    pub name: Bytes,
    /// Engine name.
    pub engine: Bytes,
    /// Optional description.
    pub description: Option<Bytes>,
    /// Function code.
    pub code: Bytes,
}

/// Stream metadata, stored after the entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamMeta {
    /// Number of live entries.
    pub length: u64,
    /// Last id ever generated.
    pub last_id: StreamId,
    /// First live id (stream types 19+).
    pub first_id: Option<StreamId>,
    /// Largest deleted id (stream types 19+).
    pub max_deleted_id: Option<StreamId>,
    /// Count of entries ever added (stream types 19+).
    pub entries_added: Option<u64>,
    /// Number of consumer groups that follow.
    pub groups: u64,
}

impl StreamMeta {
    /// Metadata of a stream of `length` live entries whose last generated id is `last_id`,
    /// without the RDB 10+ fields (writers fill them in from the entries).
    ///
    /// ```
    /// use respsync::rdb::{StreamId, StreamMeta};
    ///
    /// let meta = StreamMeta::new(2, StreamId { ms: 5, seq: 1 });
    /// assert_eq!((meta.length, meta.groups, meta.first_id), (2, 0, None));
    /// ```
    pub fn new(length: u64, last_id: StreamId) -> Self {
        StreamMeta {
            length,
            last_id,
            first_id: None,
            max_deleted_id: None,
            entries_added: None,
            groups: 0,
        }
    }
}

/// A consumer group header.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamGroupInfo {
    /// Group name.
    pub name: Bytes,
    /// Last delivered id.
    pub last_id: StreamId,
    /// Entries read counter (stream types 19+); `u64::MAX` means "unknown" (−1 in Redis).
    pub entries_read: Option<u64>,
    /// Number of pending entries that follow.
    pub pending: u64,
}

impl StreamGroupInfo {
    /// A group header: its name, last delivered id and entries-read counter (`None`: unknown).
    /// `pending` starts at 0; writers count the pending list themselves.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use respsync::rdb::{StreamGroupInfo, StreamId};
    ///
    /// let g = StreamGroupInfo::new(Bytes::from_static(b"g"), StreamId { ms: 1, seq: 0 }, Some(1));
    /// assert_eq!((g.entries_read, g.pending), (Some(1), 0));
    /// ```
    pub fn new(name: Bytes, last_id: StreamId, entries_read: Option<u64>) -> Self {
        StreamGroupInfo {
            name,
            last_id,
            entries_read,
            pending: 0,
        }
    }
}

/// An entry of a group's pending entries list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingEntry {
    /// Entry id.
    pub id: StreamId,
    /// Last delivery time, ms since the Unix epoch.
    pub delivery_time_ms: i64,
    /// Number of deliveries.
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamConsumerInfo {
    /// Consumer name.
    pub name: Bytes,
    /// Last time the consumer was seen, ms since the Unix epoch.
    pub seen_time_ms: i64,
    /// Last time the consumer was active (stream type 21+).
    pub active_time_ms: Option<i64>,
    /// Number of pending ids that follow.
    pub pending: u64,
}

impl StreamConsumerInfo {
    /// A consumer header: its name and when it was last seen (ms since the Unix epoch).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use respsync::rdb::StreamConsumerInfo;
    ///
    /// let c = StreamConsumerInfo::new(Bytes::from_static(b"alice"), 1_700_000_000_000);
    /// assert_eq!((c.seen_time_ms, c.active_time_ms), (1_700_000_000_000, None));
    /// ```
    pub fn new(name: Bytes, seen_time_ms: i64) -> Self {
        StreamConsumerInfo {
            name,
            seen_time_ms,
            active_time_ms: None,
            pending: 0,
        }
    }
}

/// The outcome of the checksum check at the end of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Checksum {
    /// The stored CRC-64 matched the computed one.
    Verified(u64),
    /// The file stored 0: written with `rdbchecksum no`.
    Disabled,
    /// RDB version < 5: the format has no checksum.
    Absent,
    /// The check was skipped by `danger_skip_checksum`; the computed value is given.
    Skipped(u64),
}

/// One event of the parse. Events come in file order; a key's events are bracketed by
/// [`RdbEvent::KeyStart`] and [`RdbEvent::KeyEnd`].
///
/// Inside a key, by value type:
/// - string: zero or more [`RdbEvent::StringChunk`] whose concatenation is the value;
/// - list, set: one [`RdbEvent::Element`] per element (integers as decimal text);
/// - zset: [`RdbEvent::ZsetMember`]; hash: [`RdbEvent::HashField`];
/// - stream: [`RdbEvent::StreamNode`] and [`RdbEvent::StreamEntry`] items, then
///   [`RdbEvent::StreamMeta`], then per group [`RdbEvent::StreamGroup`],
///   [`RdbEvent::StreamPending`]…, then per consumer [`RdbEvent::StreamConsumer`],
///   [`RdbEvent::StreamConsumerPending`]…;
/// - module: [`RdbEvent::Module`] then [`RdbEvent::ModuleChunk`]s.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RdbEvent {
    /// The file header.
    Header {
        /// Magic string.
        magic: Magic,
        /// RDB version number (e.g. 10 for `REDIS0010`, 80 for `VALKEY080`).
        version: u32,
    },
    /// An `AUX` field.
    Aux {
        /// Field name.
        name: Bytes,
        /// Field value (integers as decimal text).
        value: Bytes,
    },
    /// `SELECTDB`: following keys belong to this database.
    SelectDb {
        /// Database number.
        db: u64,
    },
    /// `RESIZEDB`: sizing hints for the current database.
    ResizeDb {
        /// Number of keys.
        keys: u64,
        /// Number of keys with an expiry.
        expires: u64,
    },
    /// `SLOT_INFO` (Redis 7.4+ cluster): sizing hints for one slot.
    SlotInfo {
        /// Slot number.
        slot: u64,
        /// Keys in the slot.
        keys: u64,
        /// Keys with an expiry in the slot.
        expires: u64,
    },
    /// `FUNCTION2`: a function library's source.
    Function {
        /// Full library code, e.g. `#!lua name=mylib\n...`.
        code: Bytes,
    },
    /// `FUNCTION_PRE_GA` (Redis 7.0 release candidates).
    FunctionPreGa(Box<PreGaFunction>),
    /// `MODULE_AUX` start; its raw opcode stream follows as [`RdbEvent::ModuleChunk`]s and
    /// ends with [`RdbEvent::ModuleAuxEnd`].
    ModuleAux {
        /// Module type id.
        module: ModuleId,
        /// When the module wants it loaded: 1 = before the keyspace, 2 = after.
        when: u64,
    },
    /// End of a `MODULE_AUX` record.
    ModuleAuxEnd,
    /// A non-standard opcode configured to be skipped with its one `len` argument.
    NonStandardOpcode {
        /// The opcode byte.
        opcode: u8,
        /// Its argument.
        value: u64,
    },
    /// A key record starts.
    KeyStart(KeyInfo),
    /// A piece of a string value.
    StringChunk(Bytes),
    /// A list element or set member.
    Element(Bytes),
    /// A sorted-set member.
    ZsetMember {
        /// Member.
        member: Bytes,
        /// Score.
        score: f64,
    },
    /// A hash field.
    HashField {
        /// Field name.
        field: Bytes,
        /// Value.
        value: Bytes,
        /// Per-field expiry in ms since the Unix epoch (Redis 7.4+/Valkey 9), if any.
        expire_ms: Option<i64>,
    },
    /// A stream listpack node starts.
    StreamNode {
        /// The node's master id.
        master_id: StreamId,
        /// Live entries in the node.
        live: u64,
        /// Entries flagged deleted in the node (skipped, not emitted).
        deleted: u64,
    },
    /// A live stream entry.
    StreamEntry {
        /// Entry id.
        id: StreamId,
        /// Field/value pairs in order (names may repeat).
        fields: Vec<(Bytes, Bytes)>,
    },
    /// Stream metadata (after all entries).
    StreamMeta(StreamMeta),
    /// A consumer group header.
    StreamGroup(StreamGroupInfo),
    /// An entry of the current group's pending list.
    StreamPending(PendingEntry),
    /// A consumer of the current group.
    StreamConsumer(StreamConsumerInfo),
    /// A pending id owned by the current consumer.
    StreamConsumerPending(StreamId),
    /// Idempotent-producer settings of a version 4 stream (after the groups); one
    /// [`RdbEvent::StreamIdmpProducer`] per producer follows, then
    /// [`RdbEvent::StreamIdmpStats`].
    StreamIdmp {
        /// `idmp_duration`.
        duration: u64,
        /// `idmp_max_entries`.
        max_entries: u64,
        /// Number of producers that follow.
        producers: u64,
    },
    /// A producer of a version 4 stream; its [`RdbEvent::StreamIdmpEntry`]s follow.
    StreamIdmpProducer {
        /// Producer id.
        pid: Bytes,
        /// Number of entries that follow.
        entries: u64,
    },
    /// An idempotency id of the current producer and the stream id it produced.
    StreamIdmpEntry {
        /// Idempotency id.
        iid: Bytes,
        /// Stream entry id.
        id: StreamId,
    },
    /// Idempotent-producer counters, last of a version 4 stream.
    StreamIdmpStats {
        /// `iids_added`.
        added: u64,
        /// `iids_duplicates`.
        duplicates: u64,
    },
    /// Redis 8.6 `KEY_META`: one metadata class of the next key. Its raw module opcode stream
    /// follows as [`RdbEvent::ModuleChunk`]s (the last one holds the opcode 0).
    KeyMeta {
        /// The 4-byte class spec.
        class_spec: [u8; 4],
    },
    /// A module value (type 7) starts; raw opcode stream chunks follow.
    Module {
        /// Module type id.
        id: ModuleId,
    },
    /// Raw bytes of a module opcode stream (one opcode item per chunk, the last chunk holds
    /// the terminating opcode 0). Concatenated after the module id they re-create the record.
    ModuleChunk(Bytes),
    /// A value, or part of one, as stored: an LZF-compressed string, an embedded container, a
    /// quicklist or stream node, not decoded. Only with
    /// [`ParserConfig::lazy_values`](super::ParserConfig::lazy_values), in place of the events
    /// decoding it gives ([`RawValue::events`]).
    Raw(RawValue),
    /// The current key record is complete.
    KeyEnd,
    /// End of the file; nothing follows.
    End {
        /// Checksum outcome.
        checksum: Checksum,
    },
}
