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
//! [`Writer::begin_string`]. [`Writer::finish`] writes the trailer and hands back whatever is
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
use super::encoding::object::{write_len, EncodeError, ObjectEncoder, Thresholds};
use super::{ModuleId, StreamId, Value};

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
/// stays usable (except after [`WriteError::Finished`], [`WriteError::StringOpen`] and
/// [`WriteError::StringLength`], which are caller bugs).
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
    /// Bytes not yet handed out.
    out: Vec<u8>,
    /// Scratch for one record.
    scratch: Vec<u8>,
    crc: Crc64,
    /// `(declared, written)` of a string opened with `begin_string`.
    open_string: Option<(u64, u64)>,
    finished: bool,
    written: u64,
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
            out: Vec::with_capacity(64 << 10),
            scratch: Vec::new(),
            crc: Crc64::new(),
            open_string: None,
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
        if self.open_string.is_some() {
            return Err(WriteError::StringOpen);
        }
        Ok(())
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
    pub fn string(&mut self, key: &[u8], value: &[u8], options: KeyOptions) -> Result<(), WriteError> {
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
        self.open_string = Some((len, 0));
        Ok(())
    }

    /// Appends a piece of the string opened with [`Writer::begin_string`].
    pub fn string_chunk(&mut self, data: &[u8]) -> Result<(), WriteError> {
        if self.finished {
            return Err(WriteError::Finished);
        }
        let Some((declared, got)) = self.open_string.as_mut() else {
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
        match self.open_string {
            Some((declared, got)) if declared == got => {
                self.open_string = None;
                Ok(())
            }
            Some((declared, got)) => Err(WriteError::StringLength { declared, got }),
            None => Err(WriteError::StringOpen),
        }
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
