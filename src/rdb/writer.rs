//! Writing whole RDB files: [`Writer`] streams a snapshot out chunk by chunk.
//!
//! The writer produces the header, the AUX fields, functions, module AUX records, databases
//! (`SELECTDB` + `RESIZEDB`), keys with their expiry and LRU/LFU data, and the `EOF` opcode
//! with the CRC-64 trailer. Values are encoded by
//! [`ObjectEncoder`], so every type gets the compact
//! encoding Redis itself would choose at the target version (9–12, default 10).
//!
//! It does no I/O: each call appends to an internal buffer that the caller drains with
//! [`Writer::poll_chunk`] and writes wherever it likes (a socket for a diskless transfer, a
//! file). Memory is bounded by what the caller leaves undrained plus the encoding of one
//! value; a string too large to hold can be written piece by piece with
//! [`Writer::begin_string`], and a collection element by element with [`Writer::begin_list`],
//! [`Writer::begin_set`], [`Writer::begin_zset`] and [`Writer::begin_hash`] (see
//! [Streamed collections](Writer#streamed-collections)). [`Writer::finish`] writes the trailer and hands back whatever is
//! still buffered, so a writer that is never drained produces the whole file in one `Bytes`.
//!
//! ## Nothing is dropped silently
//!
//! Data that the target version cannot hold is an error naming the key
//! ([`WriteError::Lossy`], or [`WriteError::Encode`] for hash field TTLs below version 12),
//! unless [`WriterConfig::allow_lossy`] is set, in which case the documented defaults of
//! [`Writer::key`] are written instead.
//!
//! ```
//! use bytes::Bytes;
//! use respsync::rdb::{Collector, KeyOptions, Parser, ParserConfig, Value, Writer, WriterConfig};
//!
//! let mut w = Writer::new(WriterConfig::default()).unwrap();
//! w.select_db(0, 1, 1).unwrap();
//! let value = Value::List(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
//! w.key(b"mylist", &value, KeyOptions::expire_at(1_900_000_000_000)).unwrap();
//! let file = w.finish().unwrap();
//! assert!(file.starts_with(b"REDIS0010"));
//!
//! // The parser reads it back.
//! let mut parser = Parser::new(ParserConfig::default());
//! parser.push(&file);
//! parser.finish();
//! let mut collector = Collector::new(1 << 20);
//! let mut keys = Vec::new();
//! while let Some(event) = parser.poll_event().unwrap() {
//!     if let Some(kv) = collector.handle_event(event).unwrap() {
//!         keys.push(kv);
//!     }
//! }
//! assert_eq!(keys.len(), 1);
//! assert_eq!(keys[0].1, value);
//! ```

use bytes::Bytes;

use super::encoding::crc64::Crc64;
use super::encoding::listpack::ListpackBuilder;
use super::encoding::object::{ty, write_len, EncodeError, ObjectEncoder, Thresholds};
use super::encoding::parse_canonical_i64;
use super::encoding::ziplist::ZiplistBuilder;
use super::{HashEntry, ModuleId, StreamId, Value};

const OP_FUNCTION2: u8 = 245;
const OP_MODULE_AUX: u8 = 247;
const OP_IDLE: u8 = 248;
const OP_FREQ: u8 = 249;
const OP_AUX: u8 = 250;
const OP_RESIZEDB: u8 = 251;
const OP_EXPIRETIME_MS: u8 = 252;
const OP_SELECTDB: u8 = 254;
const OP_EOF: u8 = 255;
const MODULE_OP_UINT: u64 = 2;

/// Replication information stored in the AUX fields `repl-stream-db`, `repl-id` and
/// `repl-offset` (written by a master for its replicas, or by a replica).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplInfo {
    /// The database selected in the replication stream.
    pub stream_db: u64,
    /// The 40-character replication id.
    pub id: Bytes,
    /// The replication offset the snapshot corresponds to.
    pub offset: i64,
}

/// The AUX fields written after the header, in Redis's order.
///
/// ```
/// use respsync::rdb::AuxFields;
///
/// let aux = AuxFields { ctime: 1_700_000_000, ..AuxFields::default() };
/// assert_eq!(&aux.redis_ver[..], b"7.0.15");
/// assert!(aux.repl.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuxFields {
    /// `redis-ver`; default `7.0.15`. Empty: not written.
    pub redis_ver: Bytes,
    /// `redis-bits`; default 64.
    pub redis_bits: u32,
    /// `ctime`, Unix seconds (the caller owns the clock); default 0.
    pub ctime: i64,
    /// `used-mem`, bytes; default 0.
    pub used_mem: u64,
    /// `repl-stream-db`, `repl-id`, `repl-offset`; default none.
    pub repl: Option<ReplInfo>,
    /// `aof-base` (0 or 1); default `false`. Written at version 10 and later, as Redis 7 does.
    pub aof_base: bool,
    /// Further fields written after the standard ones, in order (e.g. ones read from a source
    /// file). Names must not repeat the ones above.
    pub extra: Vec<(Bytes, Bytes)>,
}

impl Default for AuxFields {
    fn default() -> Self {
        AuxFields {
            redis_ver: Bytes::from_static(b"7.0.15"),
            redis_bits: 64,
            ctime: 0,
            used_mem: 0,
            repl: None,
            aof_base: false,
            extra: Vec::new(),
        }
    }
}

/// Settings of a [`Writer`].
///
/// ```
/// use respsync::rdb::WriterConfig;
///
/// let config = WriterConfig { version: 9, ..WriterConfig::default() };
/// assert!(config.compression);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WriterConfig {
    /// RDB version, 9–12; default 10 (what Redis 7.0 writes and loads).
    pub version: u8,
    /// AUX fields.
    pub aux: AuxFields,
    /// LZF-compress strings longer than 20 bytes when it pays (`rdbcompression`); default on.
    pub compression: bool,
    /// Write the CRC-64 (`rdbchecksum`); when off the trailer is 0. Default on.
    pub checksum: bool,
    /// Encoding thresholds; default Redis's.
    pub thresholds: Thresholds,
    /// Write data the target version cannot hold exactly by its documented replacement
    /// instead of failing (see [`Writer::key`]); default off.
    pub allow_lossy: bool,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            version: 10,
            aux: AuxFields::default(),
            compression: true,
            checksum: true,
            thresholds: Thresholds::default(),
            allow_lossy: false,
        }
    }
}

/// Per-key data stored before the value: expiry and LRU/LFU information.
///
/// ```
/// use respsync::rdb::KeyOptions;
///
/// let o = KeyOptions::expire_at(1_700_000_000_000);
/// assert_eq!(o.expire_ms, Some(1_700_000_000_000));
/// assert_eq!(KeyOptions::default().expire_ms, None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyOptions {
    /// Absolute expiry, ms since the Unix epoch.
    pub expire_ms: Option<i64>,
    /// LRU idle time in seconds (`IDLE`).
    pub idle_s: Option<u64>,
    /// LFU counter (`FREQ`).
    pub freq: Option<u8>,
}

impl KeyOptions {
    /// Options with only an expiry.
    pub fn expire_at(ms: i64) -> Self {
        KeyOptions {
            expire_ms: Some(ms),
            ..KeyOptions::default()
        }
    }
}

/// Why the writer refused a call. Nothing is written by a call that fails, and the writer
/// stays usable (except after [`WriteError::Finished`], [`WriteError::StringOpen`],
/// [`WriteError::StringLength`], [`WriteError::CollectionOpen`] and
/// [`WriteError::CollectionLength`], which are caller bugs, and after an error inside a streamed
/// collection, whose first part is already written: such a file must be abandoned).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The configured version is not one the writer writes.
    #[error("unsupported rdb version {0} (writes 9 to 12)")]
    Version(u8),
    /// A value could not be encoded.
    #[error("key {key}: {source}")]
    Encode {
        /// The key, printable (non-printable bytes escaped).
        key: String,
        /// What went wrong.
        source: EncodeError,
    },
    /// The value holds data the target version cannot store, and lossy writing is off.
    #[error("key {key}: rdb version {version} cannot hold the stream's {what}")]
    Lossy {
        /// The key, printable.
        key: String,
        /// Target version.
        version: u8,
        /// What would be lost.
        what: &'static str,
    },
    /// Functions need RDB version 10 (Redis 7.0) or later.
    #[error("functions need rdb version 10, writing {0}")]
    FunctionsUnsupported(u8),
    /// A call after [`Writer::finish`].
    #[error("writer already finished")]
    Finished,
    /// A record was started while a string begun with [`Writer::begin_string`] is open, or
    /// [`Writer::string_chunk`] was called with none open.
    #[error("string value open or not open")]
    StringOpen,
    /// The chunks of a streamed string do not add up to its declared length.
    #[error("streamed string length mismatch: declared {declared}, got {got}")]
    StringLength {
        /// Declared length.
        declared: u64,
        /// Bytes given so far.
        got: u64,
    },
    /// A record was started while a collection begun with a `begin_*` call is open, or an
    /// element call or `end_*` does not match the open collection (or none is open).
    #[error("streamed collection open, not open, or of another type")]
    CollectionOpen,
    /// The items of a streamed collection do not add up to its declared count.
    #[error("streamed collection count mismatch: declared {declared} {what}, got {got}")]
    CollectionLength {
        /// What is counted: `elements`, `nodes`, `members` or `fields`.
        what: &'static str,
        /// Declared count.
        declared: u64,
        /// Items given so far.
        got: u64,
    },
}

/// Elements per quicklist node of a list streamed with [`Writer::begin_list`], and the
/// largest such list still collected and encoded whole (with Redis's 8 KiB node rule).
pub const LIST_NODE_ELEMENTS: u64 = 128;

/// The collection types [`Writer`] streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coll {
    List,
    Set,
    Zset,
    Hash,
}

/// A value being written by pieces.
#[derive(Debug)]
enum Open {
    /// `(declared, written)` of a string opened with `begin_string`.
    String(u64, u64),
    Collection(Box<Streamed>),
}

/// A collection opened with one of the `begin_*` calls.
#[derive(Debug)]
struct Streamed {
    coll: Coll,
    key: Bytes,
    /// Declared items (list elements, or nodes for `begin_list_nodes`), and given so far.
    declared: u64,
    got: u64,
    how: How,
}

#[derive(Debug)]
enum How {
    /// Small enough for a compact encoding: collected, then written like [`Writer::key`].
    Buffered { options: KeyOptions, value: Value },
    /// Hash-table set or hash, skiplist zset: every item is written as it comes.
    Direct,
    /// A quicklist: the node being filled. `per_node` is `Some(k)` when the count is in
    /// elements (nodes of `k`), `None` when the caller closes the nodes.
    List {
        node: Node,
        in_node: u64,
        per_node: Option<u64>,
    },
}

/// A quicklist node being built: listpack (version 10+) or ziplist (9).
#[derive(Debug)]
enum Node {
    Listpack(ListpackBuilder),
    Ziplist(ZiplistBuilder),
}

impl Node {
    fn new(version: u8) -> Node {
        if version >= 10 {
            Node::Listpack(ListpackBuilder::new())
        } else {
            Node::Ziplist(ZiplistBuilder::new())
        }
    }

    fn push(&mut self, element: &[u8]) {
        match self {
            Node::Listpack(b) => b.push(element),
            Node::Ziplist(b) => b.push(element),
        }
    }
}

/// Writes an RDB file as a stream of chunks. See the [module docs](self) for an example.
///
/// Call order: [`Writer::new`] writes the header and AUX fields; then any of
/// [`Writer::aux`], [`Writer::module_aux`], [`Writer::function`] (Redis writes these before
/// the keyspace), then per database [`Writer::select_db`] and its keys; finally
/// [`Writer::finish`]. Drain [`Writer::poll_chunk`] whenever convenient.
#[derive(Debug)]
pub struct Writer {
    enc: ObjectEncoder,
    version: u8,
    checksum: bool,
    allow_lossy: bool,
    thresholds: Thresholds,
    /// Bytes not yet handed out.
    out: Vec<u8>,
    /// Scratch for one record.
    scratch: Vec<u8>,
    crc: Crc64,
    /// A string or collection being written by pieces.
    open: Option<Open>,
    finished: bool,
    written: u64,
}

/// Counts one more item of a streamed collection, refusing one past the declared count.
fn count_one(declared: u64, got: &mut u64, what: &'static str) -> Result<(), WriteError> {
    if *got == declared {
        return Err(WriteError::CollectionLength {
            what,
            declared,
            got: declared + 1,
        });
    }
    *got += 1;
    Ok(())
}

/// Key bytes as printable text for error messages.
fn printable(key: &[u8]) -> String {
    key.escape_ascii().to_string()
}

impl Writer {
    /// A writer with the header and AUX fields already buffered.
    pub fn new(config: WriterConfig) -> Result<Self, WriteError> {
        let mut enc =
            ObjectEncoder::new(config.version).map_err(|_| WriteError::Version(config.version))?;
        enc.set_thresholds(config.thresholds)
            .set_compression(config.compression);
        let mut w = Writer {
            enc,
            version: config.version,
            checksum: config.checksum,
            allow_lossy: config.allow_lossy,
            thresholds: config.thresholds,
            out: Vec::with_capacity(64 << 10),
            scratch: Vec::new(),
            crc: Crc64::new(),
            open: None,
            finished: false,
            written: 0,
        };
        w.out
            .extend_from_slice(format!("REDIS{:04}", config.version).as_bytes());
        let aux = &config.aux;
        if !aux.redis_ver.is_empty() {
            w.aux_field(b"redis-ver", &aux.redis_ver);
        }
        w.aux_field(b"redis-bits", aux.redis_bits.to_string().as_bytes());
        w.aux_field(b"ctime", aux.ctime.to_string().as_bytes());
        w.aux_field(b"used-mem", aux.used_mem.to_string().as_bytes());
        if let Some(repl) = &aux.repl {
            w.aux_field(b"repl-stream-db", repl.stream_db.to_string().as_bytes());
            w.aux_field(b"repl-id", &repl.id);
            w.aux_field(b"repl-offset", repl.offset.to_string().as_bytes());
        }
        if config.version >= 10 {
            w.aux_field(b"aof-base", if aux.aof_base { b"1" } else { b"0" });
        }
        for (name, value) in &aux.extra {
            w.aux_field(name, value);
        }
        Ok(w)
    }

    /// The RDB version being written.
    pub fn version(&self) -> u8 {
        self.version
    }

    fn aux_field(&mut self, name: &[u8], value: &[u8]) {
        self.out.push(OP_AUX);
        self.enc.write_string(name, &mut self.out);
        self.enc.write_string(value, &mut self.out);
    }

    fn ready(&self) -> Result<(), WriteError> {
        if self.finished {
            return Err(WriteError::Finished);
        }
        match self.open {
            Some(Open::String(..)) => Err(WriteError::StringOpen),
            Some(Open::Collection(_)) => Err(WriteError::CollectionOpen),
            None => Ok(()),
        }
    }

    /// Writes one more AUX field.
    pub fn aux(&mut self, name: &[u8], value: &[u8]) -> Result<(), WriteError> {
        self.ready()?;
        self.aux_field(name, value);
        Ok(())
    }

    /// Writes a function library (`FUNCTION2`, its full source, e.g. `#!lua name=lib ...`).
    pub fn function(&mut self, code: &[u8]) -> Result<(), WriteError> {
        self.ready()?;
        if self.version < 10 {
            return Err(WriteError::FunctionsUnsupported(self.version));
        }
        self.out.push(OP_FUNCTION2);
        self.enc.write_string(code, &mut self.out);
        Ok(())
    }

    /// Writes a `MODULE_AUX` record: the module id, `when` (1 before the keyspace, 2 after)
    /// and `raw`, the module's opcode stream ending with opcode 0, passed through as is.
    pub fn module_aux(
        &mut self,
        module: ModuleId,
        when: u64,
        raw: &[u8],
    ) -> Result<(), WriteError> {
        self.ready()?;
        self.out.push(OP_MODULE_AUX);
        write_len(module.0, &mut self.out);
        write_len(MODULE_OP_UINT, &mut self.out);
        write_len(when, &mut self.out);
        self.out.extend_from_slice(raw);
        Ok(())
    }

    /// Selects database `db` for the keys that follow, with `RESIZEDB` size hints (number of
    /// keys, number of keys with an expiry).
    pub fn select_db(&mut self, db: u64, keys: u64, expires: u64) -> Result<(), WriteError> {
        self.ready()?;
        self.out.push(OP_SELECTDB);
        write_len(db, &mut self.out);
        self.out.push(OP_RESIZEDB);
        write_len(keys, &mut self.out);
        write_len(expires, &mut self.out);
        Ok(())
    }

    fn key_prefix(&mut self, options: KeyOptions) {
        if let Some(ms) = options.expire_ms {
            self.out.push(OP_EXPIRETIME_MS);
            self.out.extend_from_slice(&ms.to_le_bytes());
        }
        if let Some(idle) = options.idle_s {
            self.out.push(OP_IDLE);
            write_len(idle, &mut self.out);
        }
        if let Some(freq) = options.freq {
            self.out.push(OP_FREQ);
            self.out.push(freq);
        }
    }

    /// Writes a key with its value in the encoding Redis would choose at this version.
    ///
    /// Stream data older versions cannot hold is refused with [`WriteError::Lossy`] unless
    /// [`WriterConfig::allow_lossy`] is set; then it is replaced by what Redis itself assumes
    /// when it loads the older type: below version 11 a consumer's active time becomes its
    /// seen time; at version 9 the first id, max-deleted id, entries-added and groups'
    /// entries-read counters are not stored (Redis 7 recomputes them on load). Hash field
    /// TTLs below version 12 are always an error ([`EncodeError::FieldExpiryUnsupported`]).
    pub fn key(
        &mut self,
        key: &[u8],
        value: &Value,
        options: KeyOptions,
    ) -> Result<(), WriteError> {
        self.ready()?;
        if !self.allow_lossy {
            if let Some(what) = self.would_lose(value) {
                return Err(WriteError::Lossy {
                    key: printable(key),
                    version: self.version,
                    what,
                });
            }
        }
        let mut rec = std::mem::take(&mut self.scratch);
        rec.clear();
        let res = self.enc.write_object(Some(key), value, &mut rec);
        if let Err(source) = res {
            self.scratch = rec;
            return Err(WriteError::Encode {
                key: printable(key),
                source,
            });
        }
        self.key_prefix(options);
        self.out.extend_from_slice(&rec);
        self.scratch = rec;
        Ok(())
    }

    /// What of `value` the target version cannot store exactly (see [`Writer::key`]), if
    /// anything: lets a caller that set [`WriterConfig::allow_lossy`] report each loss.
    pub fn would_lose(&self, value: &Value) -> Option<&'static str> {
        let Value::Stream(s) = value else {
            return None;
        };
        if self.version < 11 {
            let active_differs = s.groups.iter().flat_map(|g| &g.consumers).any(|c| {
                c.info
                    .active_time_ms
                    .is_some_and(|a| a != c.info.seen_time_ms)
            });
            if active_differs {
                return Some("consumer active time");
            }
        }
        if self.version < 10 {
            let zero = StreamId { ms: 0, seq: 0 };
            let first = s.entries.first().map_or(zero, |e| e.id);
            let m = &s.meta;
            if m.first_id.is_some_and(|f| f != first) {
                return Some("first id");
            }
            if m.max_deleted_id.is_some_and(|d| d != zero) {
                return Some("max deleted id");
            }
            if m.entries_added.is_some_and(|n| n != s.entries.len() as u64) {
                return Some("entries-added counter");
            }
            if s.groups
                .iter()
                .any(|g| g.info.entries_read.is_some_and(|r| r != u64::MAX))
            {
                return Some("group entries-read counter");
            }
        }
        None
    }

    /// Writes a string key from borrowed bytes, encoded as Redis would (an integer when it is
    /// one, LZF when compression is on and pays): the same record as [`Writer::key`] with a
    /// [`Value::String`], without building one.
    ///
    /// ```
    /// use respsync::rdb::{KeyOptions, Writer, WriterConfig};
    ///
    /// let mut w = Writer::new(WriterConfig::default()).unwrap();
    /// w.select_db(0, 1, 0).unwrap();
    /// w.string(b"counter", b"12345", KeyOptions::default()).unwrap();
    /// let file = w.finish().unwrap();
    /// assert!(file.windows(3).any(|x| x == [0xc1, 0x39, 0x30])); // int16 12345
    /// ```
    pub fn string(
        &mut self,
        key: &[u8],
        value: &[u8],
        options: KeyOptions,
    ) -> Result<(), WriteError> {
        self.ready()?;
        self.key_prefix(options);
        self.out.push(0);
        self.enc.write_string(key, &mut self.out);
        self.enc.write_string(value, &mut self.out);
        Ok(())
    }

    /// Starts a string value of `len` bytes, written raw (no integer or LZF encoding) from the
    /// pieces given to [`Writer::string_chunk`]; [`Writer::end_string`] closes it. For values
    /// too large to hold in memory.
    pub fn begin_string(
        &mut self,
        key: &[u8],
        len: u64,
        options: KeyOptions,
    ) -> Result<(), WriteError> {
        self.ready()?;
        self.key_prefix(options);
        self.out.push(0);
        self.enc.write_string(key, &mut self.out);
        write_len(len, &mut self.out);
        self.open = Some(Open::String(len, 0));
        Ok(())
    }

    /// Appends a piece of the string opened with [`Writer::begin_string`].
    pub fn string_chunk(&mut self, data: &[u8]) -> Result<(), WriteError> {
        if self.finished {
            return Err(WriteError::Finished);
        }
        let Some(Open::String(declared, got)) = self.open.as_mut() else {
            return Err(WriteError::StringOpen);
        };
        let total = *got + data.len() as u64;
        if total > *declared {
            return Err(WriteError::StringLength {
                declared: *declared,
                got: total,
            });
        }
        *got = total;
        self.out.extend_from_slice(data);
        Ok(())
    }

    /// Closes the string opened with [`Writer::begin_string`]; its pieces must add up to the
    /// declared length.
    pub fn end_string(&mut self) -> Result<(), WriteError> {
        match self.open {
            Some(Open::String(declared, got)) if declared == got => {
                self.open = None;
                Ok(())
            }
            Some(Open::String(declared, got)) => Err(WriteError::StringLength { declared, got }),
            _ => Err(WriteError::StringOpen),
        }
    }

    /// Starts a list of `len` elements, given one by one to [`Writer::list_element`] and
    /// closed by [`Writer::end_list`]. See [Streamed collections](Writer#streamed-collections).
    ///
    /// Up to [`LIST_NODE_ELEMENTS`] elements are collected and written as [`Writer::key`]
    /// would (Redis's 8 KiB nodes). A longer list is written as it comes, as a quicklist of
    /// nodes of [`LIST_NODE_ELEMENTS`] elements each (listpacks; ziplists at version 9), since
    /// the node count precedes the nodes; Redis loads nodes of any size.
    pub fn begin_list(
        &mut self,
        key: &[u8],
        len: u64,
        options: KeyOptions,
    ) -> Result<(), WriteError> {
        if len <= LIST_NODE_ELEMENTS {
            return self.begin_buffered(Coll::List, key, len, options, Value::List(Vec::new()));
        }
        let nodes = len.div_ceil(LIST_NODE_ELEMENTS);
        self.begin_quicklist(key, len, nodes, Some(LIST_NODE_ELEMENTS), options)
    }

    /// Starts a list written as `nodes` quicklist nodes that the caller delimits: elements
    /// go to [`Writer::list_element`], each node is closed by [`Writer::end_list_node`], and
    /// [`Writer::end_list`] closes the list (and its last node). For copying a quicklist node
    /// by node, keeping the node layout Redis chose, when the element count is not known
    /// up front.
    pub fn begin_list_nodes(
        &mut self,
        key: &[u8],
        nodes: u64,
        options: KeyOptions,
    ) -> Result<(), WriteError> {
        self.begin_quicklist(key, nodes, nodes, None, options)
    }

    /// Appends an element to the list opened with [`Writer::begin_list`] or
    /// [`Writer::begin_list_nodes`].
    pub fn list_element(&mut self, element: &[u8]) -> Result<(), WriteError> {
        let s = self.streamed(Coll::List)?;
        match &mut s.how {
            How::Buffered { value, .. } => {
                count_one(s.declared, &mut s.got, "elements")?;
                if let Value::List(items) = value {
                    items.push(Bytes::copy_from_slice(element));
                }
                Ok(())
            }
            How::List {
                node,
                in_node,
                per_node,
            } => {
                if per_node.is_some() {
                    count_one(s.declared, &mut s.got, "elements")?;
                } else if s.got == s.declared {
                    // An element would start one node more than declared.
                    return Err(WriteError::CollectionLength {
                        what: "nodes",
                        declared: s.declared,
                        got: s.got + 1,
                    });
                }
                node.push(element);
                *in_node += 1;
                if per_node.is_some_and(|k| *in_node == k) {
                    self.flush_node();
                }
                Ok(())
            }
            How::Direct => Err(WriteError::CollectionOpen),
        }
    }

    /// Closes the current node of a list opened with [`Writer::begin_list_nodes`]; a node
    /// must hold at least one element.
    pub fn end_list_node(&mut self) -> Result<(), WriteError> {
        let s = self.streamed(Coll::List)?;
        let (key, declared) = (s.key.clone(), s.declared);
        match &s.how {
            How::List {
                in_node: 0,
                per_node: None,
                ..
            } => Err(WriteError::Encode {
                key: printable(&key),
                source: EncodeError::Empty,
            }),
            How::List { per_node: None, .. } => {
                s.got += 1;
                let got = s.got;
                self.flush_node();
                if got > declared {
                    return Err(WriteError::CollectionLength {
                        what: "nodes",
                        declared,
                        got,
                    });
                }
                Ok(())
            }
            _ => Err(WriteError::CollectionOpen),
        }
    }

    /// Closes the list opened with [`Writer::begin_list`] or [`Writer::begin_list_nodes`]:
    /// the elements (or nodes) must add up to the declared count.
    pub fn end_list(&mut self) -> Result<(), WriteError> {
        let s = self.streamed(Coll::List)?;
        if let How::List {
            in_node,
            per_node: None,
            ..
        } = s.how
        {
            if in_node > 0 {
                s.got += 1;
            }
        }
        self.end(Coll::List)
    }

    /// Starts a set of `len` members, given one by one to [`Writer::set_member`] and closed
    /// by [`Writer::end_set`]. A set small enough for an intset or a listpack is collected
    /// (until a member rules those out); a larger one is written as a hash table as it comes.
    /// See [Streamed collections](Writer#streamed-collections).
    pub fn begin_set(
        &mut self,
        key: &[u8],
        len: u64,
        options: KeyOptions,
    ) -> Result<(), WriteError> {
        let t = self.thresholds;
        let listpack = if self.version >= 11 {
            t.set_max_listpack_entries
        } else {
            0
        };
        if len <= t.set_max_intset_entries.max(listpack) as u64 {
            return self.begin_buffered(Coll::Set, key, len, options, Value::Set(Vec::new()));
        }
        self.begin_direct(Coll::Set, ty::SET, key, len, options)
    }

    /// Appends a member to the set opened with [`Writer::begin_set`]. Members are not checked
    /// for repeats once written as they come (Redis refuses a file with a repeated member).
    pub fn set_member(&mut self, member: &[u8]) -> Result<(), WriteError> {
        let t = self.thresholds;
        let version = self.version;
        let s = self.streamed(Coll::Set)?;
        count_one(s.declared, &mut s.got, "members")?;
        if let How::Buffered {
            value: Value::Set(members),
            ..
        } = &mut s.how
        {
            members.push(Bytes::copy_from_slice(member));
            let compact_possible = parse_canonical_i64(member).is_some()
                || version >= 11 && member.len() <= t.set_max_listpack_value;
            if compact_possible {
                return Ok(());
            }
            return self.go_direct(ty::SET);
        }
        self.enc.write_string(member, &mut self.out);
        Ok(())
    }

    /// Closes the set opened with [`Writer::begin_set`]; the members must add up to the
    /// declared count.
    pub fn end_set(&mut self) -> Result<(), WriteError> {
        self.end(Coll::Set)
    }

    /// Starts a sorted set of `len` members, given one by one to [`Writer::zset_member`] and
    /// closed by [`Writer::end_zset`]. One small enough for a listpack (ziplist at 9) is
    /// collected (until a member rules it out); a larger one is written as a skiplist as it
    /// comes, in the order given (Redis writes highest score first, and loads any order).
    /// See [Streamed collections](Writer#streamed-collections).
    pub fn begin_zset(
        &mut self,
        key: &[u8],
        len: u64,
        options: KeyOptions,
    ) -> Result<(), WriteError> {
        if len <= self.thresholds.zset_max_listpack_entries as u64 {
            return self.begin_buffered(Coll::Zset, key, len, options, Value::Zset(Vec::new()));
        }
        self.begin_direct(Coll::Zset, ty::ZSET_2, key, len, options)
    }

    /// Appends a member to the sorted set opened with [`Writer::begin_zset`]; a NaN score is
    /// an error. Members are not checked for repeats once written as they come.
    pub fn zset_member(&mut self, member: &[u8], score: f64) -> Result<(), WriteError> {
        let max_value = self.thresholds.zset_max_listpack_value;
        let s = self.streamed(Coll::Zset)?;
        if score.is_nan() {
            return Err(WriteError::Encode {
                key: printable(&s.key),
                source: EncodeError::NanScore,
            });
        }
        count_one(s.declared, &mut s.got, "members")?;
        if let How::Buffered {
            value: Value::Zset(pairs),
            ..
        } = &mut s.how
        {
            pairs.push((Bytes::copy_from_slice(member), score));
            if member.len() <= max_value {
                return Ok(());
            }
            return self.go_direct(ty::ZSET_2);
        }
        self.enc.write_string(member, &mut self.out);
        self.out.extend_from_slice(&score.to_le_bytes());
        Ok(())
    }

    /// Closes the sorted set opened with [`Writer::begin_zset`]; the members must add up to
    /// the declared count.
    pub fn end_zset(&mut self) -> Result<(), WriteError> {
        self.end(Coll::Zset)
    }

    /// Starts a hash of `len` fields (without field TTLs: write those with
    /// [`Writer::key`]), given one by one to [`Writer::hash_field`] and closed by
    /// [`Writer::end_hash`]. One small enough for a listpack (ziplist at 9) is collected
    /// (until a field or value rules it out); a larger one is written as a hash table as it
    /// comes. See [Streamed collections](Writer#streamed-collections).
    pub fn begin_hash(
        &mut self,
        key: &[u8],
        len: u64,
        options: KeyOptions,
    ) -> Result<(), WriteError> {
        if len <= self.thresholds.hash_max_listpack_entries as u64 {
            return self.begin_buffered(Coll::Hash, key, len, options, Value::Hash(Vec::new()));
        }
        self.begin_direct(Coll::Hash, ty::HASH, key, len, options)
    }

    /// Appends a field to the hash opened with [`Writer::begin_hash`]. Fields are not checked
    /// for repeats once written as they come.
    pub fn hash_field(&mut self, field: &[u8], value: &[u8]) -> Result<(), WriteError> {
        let max_value = self.thresholds.hash_max_listpack_value;
        let s = self.streamed(Coll::Hash)?;
        count_one(s.declared, &mut s.got, "fields")?;
        if let How::Buffered {
            value: Value::Hash(entries),
            ..
        } = &mut s.how
        {
            entries.push(HashEntry {
                field: Bytes::copy_from_slice(field),
                value: Bytes::copy_from_slice(value),
                expire_ms: None,
            });
            if field.len() <= max_value && value.len() <= max_value {
                return Ok(());
            }
            return self.go_direct(ty::HASH);
        }
        self.enc.write_string(field, &mut self.out);
        self.enc.write_string(value, &mut self.out);
        Ok(())
    }

    /// Closes the hash opened with [`Writer::begin_hash`]; the fields must add up to the
    /// declared count.
    pub fn end_hash(&mut self) -> Result<(), WriteError> {
        self.end(Coll::Hash)
    }

    /// The open collection, if it is of type `coll`.
    fn streamed(&mut self, coll: Coll) -> Result<&mut Streamed, WriteError> {
        if self.finished {
            return Err(WriteError::Finished);
        }
        match self.open.as_mut() {
            Some(Open::Collection(s)) if s.coll == coll => Ok(s),
            _ => Err(WriteError::CollectionOpen),
        }
    }

    /// An empty collection is refused as [`Writer::key`] refuses it.
    fn check_not_empty(key: &[u8], len: u64) -> Result<(), WriteError> {
        if len == 0 {
            return Err(WriteError::Encode {
                key: printable(key),
                source: EncodeError::Empty,
            });
        }
        Ok(())
    }

    fn begin_buffered(
        &mut self,
        coll: Coll,
        key: &[u8],
        len: u64,
        options: KeyOptions,
        value: Value,
    ) -> Result<(), WriteError> {
        self.ready()?;
        Self::check_not_empty(key, len)?;
        self.open = Some(Open::Collection(Box::new(Streamed {
            coll,
            key: Bytes::copy_from_slice(key),
            declared: len,
            got: 0,
            how: How::Buffered { options, value },
        })));
        Ok(())
    }

    /// Writes the record head of a collection written as it comes: prefix, type, key, count.
    fn write_head(&mut self, type_byte: u8, key: &[u8], len: u64, options: KeyOptions) {
        self.key_prefix(options);
        self.out.push(type_byte);
        self.enc.write_string(key, &mut self.out);
        write_len(len, &mut self.out);
    }

    fn begin_direct(
        &mut self,
        coll: Coll,
        type_byte: u8,
        key: &[u8],
        len: u64,
        options: KeyOptions,
    ) -> Result<(), WriteError> {
        self.ready()?;
        Self::check_not_empty(key, len)?;
        self.write_head(type_byte, key, len, options);
        self.open = Some(Open::Collection(Box::new(Streamed {
            coll,
            key: Bytes::copy_from_slice(key),
            declared: len,
            got: 0,
            how: How::Direct,
        })));
        Ok(())
    }

    /// `declared` counts elements when `per_node` is set, nodes otherwise.
    fn begin_quicklist(
        &mut self,
        key: &[u8],
        declared: u64,
        nodes: u64,
        per_node: Option<u64>,
        options: KeyOptions,
    ) -> Result<(), WriteError> {
        self.ready()?;
        Self::check_not_empty(key, declared)?;
        let type_byte = if self.version >= 10 {
            ty::LIST_QUICKLIST_2
        } else {
            ty::LIST_QUICKLIST
        };
        self.write_head(type_byte, key, nodes, options);
        self.open = Some(Open::Collection(Box::new(Streamed {
            coll: Coll::List,
            key: Bytes::copy_from_slice(key),
            declared,
            got: 0,
            how: How::List {
                node: Node::new(self.version),
                in_node: 0,
                per_node,
            },
        })));
        Ok(())
    }

    /// A collected collection turned out to need its large encoding: writes its head and
    /// what was collected, and writes the rest as it comes.
    fn go_direct(&mut self, type_byte: u8) -> Result<(), WriteError> {
        let Some(Open::Collection(s)) = self.open.as_mut() else {
            return Err(WriteError::CollectionOpen);
        };
        let How::Buffered { options, value } = std::mem::replace(&mut s.how, How::Direct) else {
            return Ok(());
        };
        let (key, declared) = (s.key.clone(), s.declared);
        self.write_head(type_byte, &key, declared, options);
        let out = &mut self.out;
        match &value {
            Value::Set(members) => members.iter().for_each(|m| self.enc.write_string(m, out)),
            Value::Zset(pairs) => {
                for (m, score) in pairs {
                    self.enc.write_string(m, out);
                    out.extend_from_slice(&score.to_le_bytes());
                }
            }
            Value::Hash(entries) => {
                for e in entries {
                    self.enc.write_string(&e.field, out);
                    self.enc.write_string(&e.value, out);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Writes the node being filled as a quicklist node and starts a fresh one.
    fn flush_node(&mut self) {
        let Some(Open::Collection(s)) = self.open.as_mut() else {
            return;
        };
        let How::List { node, in_node, .. } = &mut s.how else {
            return;
        };
        let full = std::mem::replace(node, Node::new(self.version));
        *in_node = 0;
        match full {
            Node::Listpack(b) => {
                // Quicklist 2 container: 2 = packed.
                write_len(2, &mut self.out);
                self.enc.write_string(&b.finish(), &mut self.out);
            }
            Node::Ziplist(b) => self.enc.write_string(&b.finish(), &mut self.out),
        }
    }

    /// Closes the open collection of type `coll`, checking its count.
    fn end(&mut self, coll: Coll) -> Result<(), WriteError> {
        let s = self.streamed(coll)?;
        if s.got != s.declared {
            let what = match (&s.how, coll) {
                (How::List { per_node: None, .. }, _) => "nodes",
                (_, Coll::List) => "elements",
                (_, Coll::Hash) => "fields",
                _ => "members",
            };
            return Err(WriteError::CollectionLength {
                what,
                declared: s.declared,
                got: s.got,
            });
        }
        if matches!(s.how, How::List { in_node, .. } if in_node > 0) {
            self.flush_node();
        }
        let Some(Open::Collection(s)) = self.open.take() else {
            return Err(WriteError::CollectionOpen);
        };
        if let How::Buffered { options, value } = s.how {
            return self.key(&s.key, &value, options);
        }
        Ok(())
    }

    /// Bytes buffered and not yet handed out by [`Writer::poll_chunk`].
    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    /// Total bytes handed out so far.
    pub fn bytes_out(&self) -> u64 {
        self.written
    }

    /// Whether [`Writer::finish`] has been called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Everything buffered since the last call, or `None` if nothing is.
    pub fn poll_chunk(&mut self) -> Option<Bytes> {
        if self.out.is_empty() {
            return None;
        }
        // A fresh moderate buffer: one huge value must not make every later buffer huge.
        let chunk = std::mem::replace(&mut self.out, Vec::with_capacity(64 << 10));
        self.crc.update(&chunk);
        self.written += chunk.len() as u64;
        Some(Bytes::from(chunk))
    }

    /// Writes `EOF` and the CRC-64 trailer and returns everything still buffered (the whole
    /// file if nothing was polled before).
    pub fn finish(&mut self) -> Result<Bytes, WriteError> {
        self.ready()?;
        self.out.push(OP_EOF);
        let mut crc = self.crc;
        crc.update(&self.out);
        let value = if self.checksum { crc.value() } else { 0 };
        self.out.extend_from_slice(&value.to_le_bytes());
        self.crc = crc;
        self.finished = true;
        let chunk = std::mem::take(&mut self.out);
        self.written += chunk.len() as u64;
        Ok(Bytes::from(chunk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_unknown_versions() {
        for v in [0, 8, 13] {
            let c = WriterConfig {
                version: v,
                ..WriterConfig::default()
            };
            assert_eq!(Writer::new(c).unwrap_err(), WriteError::Version(v));
        }
    }

    #[test]
    fn empty_file_layout() {
        let c = WriterConfig {
            aux: AuxFields {
                redis_ver: Bytes::new(),
                ..AuxFields::default()
            },
            ..WriterConfig::default()
        };
        let mut w = Writer::new(c).unwrap();
        let mut file = Vec::new();
        while let Some(c) = w.poll_chunk() {
            file.extend_from_slice(&c);
        }
        file.extend_from_slice(&w.finish().unwrap());
        assert!(file.starts_with(b"REDIS0010\xfa\x0aredis-bits\xc0\x40"));
        let n = file.len();
        assert_eq!(file[n - 9], 0xff);
        let crc = super::super::encoding::crc64::crc64(0, &file[..n - 8]);
        assert_eq!(file[n - 8..], crc.to_le_bytes());
        assert_eq!(w.bytes_out(), n as u64);
        assert_eq!(w.finish().unwrap_err(), WriteError::Finished);
    }

    #[test]
    fn streamed_string_length_is_checked() {
        let mut w = Writer::new(WriterConfig::default()).unwrap();
        w.begin_string(b"k", 4, KeyOptions::default()).unwrap();
        w.string_chunk(b"ab").unwrap();
        assert_eq!(w.select_db(0, 0, 0).unwrap_err(), WriteError::StringOpen);
        assert!(matches!(
            w.end_string(),
            Err(WriteError::StringLength {
                declared: 4,
                got: 2
            })
        ));
        assert!(w.string_chunk(b"abc").is_err());
        w.string_chunk(b"cd").unwrap();
        w.end_string().unwrap();
        w.finish().unwrap();
    }

    #[test]
    fn functions_need_version_10() {
        let c = WriterConfig {
            version: 9,
            ..WriterConfig::default()
        };
        let mut w = Writer::new(c).unwrap();
        assert_eq!(
            w.function(b"#!lua name=x\n").unwrap_err(),
            WriteError::FunctionsUnsupported(9)
        );
    }
}
