//! `rdb-convert IN OUT [--rdb-version N] [--lossy] [--no-repl-info] [--max-value-bytes N]`
//!
//! Reads any RDB file the parser reads (RDB 1–13, Valkey) and writes it with the crate's
//! writer at RDB version N (9–12, default 10: what Redis 7.0 writes and loads). Encodings the
//! target cannot hold are re-encoded into the nearest one it can (listpack → ziplist for 9,
//! set listpacks → intset/hash table below 11, stream types 19/21 → the target's type,
//! zipmaps and linked lists → today's compact types). AUX fields, functions, module AUX
//! records, module values (type 7, passed through raw), expiries, LRU/LFU data and every
//! database are carried over.
//!
//! Nothing is dropped silently. Data the target cannot hold is an error naming the key:
//! hash field TTLs below 12, Redis 8.6 key metadata, idempotent-producer state of type-26
//! streams, Redis 7.0 release-candidate functions, and stream fields newer than the target
//! (consumer active time below 11; first/max-deleted id and counters at 9). With `--lossy`
//! the stream fields are written as the older server would assume them, with a warning per
//! key on stderr. `--no-repl-info` leaves out `repl-stream-db`/`repl-id`/`repl-offset`.
//! Non-standard opcodes and slot-info hints are not written, with a warning.
//!
//! A key that appears twice in a database is an error (Redis refuses such files). Key names
//! are not kept: each (db, key) sets bits in a fixed-size filter (`--dedup-bytes`, default
//! 16 MiB); a key whose bits are all set already is only *possibly* a duplicate and its name
//! is kept as a suspect (at most `--max-suspects`, default 100000). At the end, a second,
//! read-only pass over IN counts each suspect exactly; only a real duplicate is an error.
//! With 16 MiB, a 3M-key file has a few hundred suspects; a file of far more keys needs a
//! larger filter (about 4 bytes per key keeps suspects rare), else it stops with an error
//! that says so. Reading IN from `-` (stdin) allows no second pass: there, any suspect is an
//! error.
//!
//! `--allow-newer` reads files whose version is newer than the newest the crate knows.
//!
//! Memory: the file is read in 256 KiB pieces, each parsed where it lies (`Parser::feed_with`
//! with a borrowing `Visitor`, values decoded only when needed); besides the filter, nothing
//! grows with the file. A string value of up to 1 MiB is held in one reused buffer (an LZF one
//! decompressed into it, whatever its size); a longer one is copied through in pieces; collections whose record stores a count (hash-table
//! sets and hashes, skiplist zsets, linked lists) are written item by item with the writer's
//! streaming calls, and quicklists node by node (keeping the source's node layout, each node
//! re-encoded for the target). Other values (small single-blob encodings, streams, hashes
//! with field TTLs, module values) are held one at a time (at most `--max-value-bytes`,
//! default 4 GiB). Members and fields of a streamed collection are not checked for repeats.
//! On error OUT is removed; exit status 1.

#[path = "../rdb-dump/input.rs"]
mod input;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::process::ExitCode;

use bytes::Bytes;
use input::{read_full, READ_SIZE};
use respsync::rdb::encoding::lzf;
use respsync::rdb::{
    AuxFields, Collector, Expiry, KeyOptions, KeyRef, KeysOnly, ModuleId, ObjectKind, Parser,
    ParserConfig, RawRef, RdbEvent, ReplInfo, Value, Visitor, Writer, WriterConfig,
};

struct Options {
    input: String,
    output: String,
    version: u8,
    lossy: bool,
    repl_info: bool,
    max_value_bytes: u64,
    dedup_bytes: usize,
    max_suspects: usize,
    allow_newer: bool,
}

/// Strings longer than this are copied to the output in pieces, never held whole.
const STREAM_STRING_ABOVE: u64 = 1 << 20;

/// Pieces the parser delivers string values in (its default, set explicitly: a string over
/// --max-value-bytes is handed to the collector in exactly these pieces).
const PARSE_CHUNK: usize = 64 << 10;

/// What `Collector` counts per piece of a value on top of its bytes.
const COLLECTOR_OVERHEAD: u64 = 16;

/// A reused buffer above this size is given back after use.
const SHRINK_ABOVE: usize = 4 << 20;

fn usage() -> ExitCode {
    eprintln!(
        "usage: rdb-convert IN OUT [--rdb-version N] [--lossy] [--no-repl-info] [--max-value-bytes N]\n\
         \x20      [--dedup-bytes N] [--max-suspects N] [--allow-newer]"
    );
    ExitCode::from(2)
}

/// An option's numeric value, if there is one and it parses.
fn number<T: std::str::FromStr>(value: Option<String>) -> Option<T> {
    value?.parse().ok()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut paths = Vec::new();
    let mut version = 10u8;
    let mut lossy = false;
    let mut repl_info = true;
    let mut max_value_bytes = 4u64 << 30;
    let mut dedup_bytes = 16usize << 20;
    let mut max_suspects = 100_000usize;
    let mut allow_newer = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dedup-bytes" => match number(args.next()) {
                Some(v) => dedup_bytes = v,
                None => return usage(),
            },
            "--max-suspects" => match number(args.next()) {
                Some(v) => max_suspects = v,
                None => return usage(),
            },
            "--allow-newer" => allow_newer = true,
            "--rdb-version" => match number(args.next()) {
                Some(v) => version = v,
                None => return usage(),
            },
            "--max-value-bytes" => match number(args.next()) {
                Some(v) => max_value_bytes = v,
                None => return usage(),
            },
            "--lossy" => lossy = true,
            "--no-repl-info" => repl_info = false,
            "-h" | "--help" => return usage(),
            _ if arg.starts_with("--") => return usage(),
            _ => paths.push(arg),
        }
    }
    let [input, output] = <[String; 2]>::try_from(paths)
        .map_err(|_| ())
        .unwrap_or_default();
    if input.is_empty() || output.is_empty() {
        return usage();
    }
    let opts = Options {
        input,
        output,
        version,
        lossy,
        repl_info,
        max_value_bytes,
        dedup_bytes,
        max_suspects,
        allow_newer,
    };
    match run(&opts) {
        Ok(n) => {
            eprintln!(
                "rdb-convert: wrote {n} keys to {} at rdb version {}",
                opts.output, opts.version
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = std::fs::remove_file(&opts.output);
            eprintln!("rdb-convert: {}: {e}", opts.input);
            ExitCode::FAILURE
        }
    }
}

type Error = Box<dyn std::error::Error>;

/// Maps the source's AUX fields onto the writer's; everything it does not know goes to
/// `extra` in file order.
fn build_aux(fields: Vec<(Bytes, Bytes)>, repl_info: bool) -> AuxFields {
    let mut aux = AuxFields {
        redis_ver: Bytes::new(),
        ..AuxFields::default()
    };
    let (mut stream_db, mut id, mut offset) = (None, None, None);
    let num = |v: &Bytes| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
    };
    for (name, value) in fields {
        let known = match &name[..] {
            b"redis-ver" => {
                aux.redis_ver = value.clone();
                true
            }
            b"redis-bits" => num(&value)
                .and_then(|n| u32::try_from(n).ok())
                .map(|n| aux.redis_bits = n)
                .is_some(),
            b"ctime" => num(&value).map(|n| aux.ctime = n).is_some(),
            b"used-mem" => num(&value)
                .and_then(|n| u64::try_from(n).ok())
                .map(|n| aux.used_mem = n)
                .is_some(),
            b"aof-base" => num(&value).map(|n| aux.aof_base = n == 1).is_some(),
            b"repl-stream-db" => {
                stream_db = num(&value).and_then(|n| u64::try_from(n).ok());
                stream_db.is_some()
            }
            b"repl-id" => {
                id = Some(value.clone());
                true
            }
            b"repl-offset" => {
                offset = num(&value);
                offset.is_some()
            }
            _ => false,
        };
        if !known {
            aux.extra.push((name, value));
        }
    }
    if repl_info {
        if let (Some(stream_db), Some(id), Some(offset)) = (stream_db, id, offset) {
            aux.repl = Some(ReplInfo {
                stream_db,
                id,
                offset,
            });
        }
    }
    aux
}

struct Converter<'a> {
    opts: &'a Options,
    config: Option<WriterConfig>,
    aux: Vec<(Bytes, Bytes)>,
    writer: Option<Writer>,
    collector: Collector,
    /// Database of the last SELECTDB not yet written (waiting for its RESIZEDB).
    pending_db: Option<u64>,
    /// Reasons the next key cannot be written (Redis 8.6 key metadata).
    key_meta: bool,
    /// Whether the current key is a type-26 stream with idempotent-producer state.
    idmp_state: bool,
    /// The key being converted, and how its value is handled.
    current: Current,
    mode: Mode,
    /// A string value held whole (reused between keys).
    value: Vec<u8>,
    /// A `MODULE_AUX` record being collected: module, `when`, raw opcode stream.
    module_aux: Option<(ModuleId, u64, Vec<u8>)>,
    keys: u64,
    /// Refuses duplicate keys (Redis refuses a file with one) in bounded memory.
    dedup: Dedup,
    db: u64,
    out: File,
    /// The first error a callback met; the rest of the parse is then ignored.
    failed: Option<Error>,
}

/// How the value of the current key is handled.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Between keys.
    Idle,
    /// Built whole by the `Collector` (single-blob encodings, streams, modules, hashes with
    /// field TTLs), then written with `Writer::key`.
    Collected,
    /// A string held in `Converter::value` until its end: `pieces` delivered so far; `lzf`
    /// if it was stored compressed (then it is never copied through in pieces).
    String { pieces: u64, lzf: bool },
    /// A string copied through in pieces (over `STREAM_STRING_ABOVE`).
    StreamedString,
    /// A collection copied through item by item.
    Collection(Streamed),
}

/// The key being converted: its name (in a reused buffer) and what preceded its value.
struct Current {
    key: Vec<u8>,
    options: KeyOptions,
    kind: ObjectKind,
    db: u64,
    expire: Option<Expiry>,
    offset: u64,
    len: Option<u64>,
}

impl Current {
    fn set(&mut self, k: &KeyRef<'_>, options: KeyOptions) {
        self.key.clear();
        self.key.extend_from_slice(k.key);
        self.options = options;
        self.kind = k.kind;
        self.db = k.db;
        self.expire = k.expire;
        self.offset = k.offset;
        self.len = k.len;
    }

    /// The key's start as the parser reported it.
    fn key_ref(&self) -> KeyRef<'_> {
        let mut k = KeyRef::new(self.db, &self.key, self.kind);
        k.expire = self.expire;
        k.idle_s = self.options.idle_s;
        k.freq = self.options.freq;
        k.offset = self.offset;
        k.len = self.len;
        k
    }
}

/// The collection being written with the writer's streaming calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Streamed {
    /// A quicklist: every top-level event is one node.
    ListNodes,
    /// A linked list (type 1).
    List,
    Set,
    Zset,
    Hash,
}

impl Streamed {
    /// How a key of `kind` whose record declares `len` items is streamed, if it is.
    fn of(kind: ObjectKind, len: Option<u64>) -> Option<(Streamed, u64)> {
        use ObjectKind as K;
        let how = match kind {
            K::ListQuicklist | K::ListQuicklist2 => Streamed::ListNodes,
            K::List => Streamed::List,
            K::Set => Streamed::Set,
            K::Zset | K::Zset2 => Streamed::Zset,
            K::Hash => Streamed::Hash,
            _ => return None,
        };
        Some((how, len?))
    }
}

/// A Bloom filter over (db, key), plus the names of keys it has seen "before" (suspects).
struct Dedup {
    bits: Vec<u64>,
    hasher: std::hash::RandomState,
    suspects: HashSet<(u64, Bytes)>,
    max_suspects: usize,
}

impl Dedup {
    /// Bit probes per key.
    const K: u64 = 7;

    fn new(bytes: usize, max_suspects: usize) -> Dedup {
        Dedup {
            bits: vec![0u64; (bytes / 8).max(1)],
            hasher: std::hash::RandomState::new(),
            suspects: HashSet::new(),
            max_suspects,
        }
    }

    /// Records a key; Err if it must be checked but the suspect budget is used up.
    fn insert(&mut self, db: u64, key: &[u8]) -> Result<(), Error> {
        let mut h = self.hasher.build_hasher();
        h.write_u64(db);
        h.write(key);
        let h1 = h.finish();
        let h2 = h1.rotate_left(32) | 1;
        let nbits = self.bits.len() as u64 * 64;
        let mut all_set = true;
        for i in 0..Self::K {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % nbits;
            let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
            all_set &= self.bits[word] & mask != 0;
            self.bits[word] |= mask;
        }
        if all_set
            && self.suspects.insert((db, Bytes::copy_from_slice(key)))
            && self.suspects.len() > self.max_suspects
        {
            return Err(format!(
                "more than {} possible duplicate keys: the file has too many keys for \
                 --dedup-bytes {} (use about 4 bytes per key)",
                self.max_suspects,
                self.bits.len() * 8
            )
            .into());
        }
        Ok(())
    }
}

/// Writes items into the collection the writer has open: those the parser hands over one by
/// one, and those a lazy value (a quicklist node) decodes to.
struct Items<'w> {
    w: &'w mut Writer,
    set: bool,
    /// The first error; later items are ignored.
    err: Option<Error>,
}

impl Items<'_> {
    fn check(&mut self, r: Result<(), respsync::rdb::WriteError>) {
        if let Err(e) = r {
            self.err.get_or_insert(e.into());
        }
    }
}

impl Visitor for Items<'_> {
    fn event(&mut self, ev: RdbEvent) {
        if self.err.is_none() {
            self.err = Some(format!("unexpected {ev:?} in a collection").into());
        }
    }

    fn element(&mut self, e: &[u8]) {
        if self.err.is_none() {
            let r = if self.set {
                self.w.set_member(e)
            } else {
                self.w.list_element(e)
            };
            self.check(r);
        }
    }

    fn string_chunk(&mut self, piece: &[u8]) {
        // A decoded compressed element, in one piece.
        self.element(piece);
    }

    fn zset_member(&mut self, member: &[u8], score: f64) {
        if self.err.is_none() {
            let r = self.w.zset_member(member, score);
            self.check(r);
        }
    }

    fn hash_field(&mut self, field: &[u8], value: &[u8], expire_ms: Option<i64>) {
        if expire_ms.is_some() {
            self.event(RdbEvent::HashField {
                field: Bytes::copy_from_slice(field),
                value: Bytes::copy_from_slice(value),
                expire_ms,
            });
        } else if self.err.is_none() {
            let r = self.w.hash_field(field, value);
            self.check(r);
        }
    }
}

impl Converter<'_> {
    fn writer(&mut self) -> Result<&mut Writer, Error> {
        if self.writer.is_none() {
            let mut config = self.config.take().unwrap_or_default();
            config.aux = build_aux(std::mem::take(&mut self.aux), self.opts.repl_info);
            self.writer = Some(Writer::new(config)?);
        }
        // Set just above when it was empty.
        Ok(self.writer.as_mut().expect("writer created above"))
    }

    fn flush_db(&mut self, keys: u64, expires: u64) -> Result<(), Error> {
        if let Some(db) = self.pending_db.take() {
            self.writer()?.select_db(db, keys, expires)?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<(), Error> {
        if let Some(w) = self.writer.as_mut() {
            while let Some(chunk) = w.poll_chunk() {
                self.out.write_all(&chunk)?;
            }
        }
        Ok(())
    }

    /// Runs one callback's work unless an earlier one failed; keeps the first error.
    fn guard(&mut self, f: impl FnOnce(&mut Self) -> Result<(), Error>) {
        if self.failed.is_none() {
            if let Err(e) = f(self) {
                self.failed = Some(e);
            }
        }
    }

    /// Everything the parser does not hand over borrowed.
    fn handle_event(&mut self, ev: RdbEvent) -> Result<(), Error> {
        match ev {
            RdbEvent::Header { .. } | RdbEvent::End { .. } => {}
            RdbEvent::Aux { name, value } => {
                if self.writer.is_none() {
                    self.aux.push((name, value));
                } else {
                    self.writer()?.aux(&name, &value)?;
                }
            }
            RdbEvent::SelectDb { db } => {
                self.flush_db(0, 0)?;
                self.db = db;
                self.pending_db = Some(db);
            }
            RdbEvent::ResizeDb { keys, expires } => self.flush_db(keys, expires)?,
            RdbEvent::SlotInfo { slot, .. } => {
                eprintln!("rdb-convert: warning: slot-info size hint for slot {slot} not written")
            }
            RdbEvent::Function { code } => self.writer()?.function(&code)?,
            RdbEvent::FunctionPreGa(f) => {
                return Err(format!(
                    "function {} is in the Redis 7.0 release-candidate format, which has no \
                     library form to convert to",
                    f.name.escape_ascii()
                )
                .into())
            }
            RdbEvent::ModuleAux { module, when } => {
                self.flush_db(0, 0)?;
                self.module_aux = Some((module, when, Vec::new()));
            }
            RdbEvent::ModuleChunk(chunk) if self.module_aux.is_some() => {
                if let Some((_, _, raw)) = self.module_aux.as_mut() {
                    if (raw.len() + chunk.len()) as u64 > self.opts.max_value_bytes {
                        return Err("module aux data over --max-value-bytes".into());
                    }
                    raw.extend_from_slice(&chunk);
                }
            }
            RdbEvent::ModuleAuxEnd => {
                if let Some((module, when, raw)) = self.module_aux.take() {
                    eprintln!(
                        "rdb-convert: note: module aux data of {} needs that module loaded on the target",
                        module.name()
                    );
                    self.writer()?.module_aux(module, when, &raw)?;
                }
            }
            RdbEvent::NonStandardOpcode { opcode, value } => eprintln!(
                "rdb-convert: warning: non-standard opcode {opcode} ({value}) not written"
            ),
            RdbEvent::KeyMeta { .. } => self.key_meta = true,
            RdbEvent::StreamIdmp { producers, .. } if producers > 0 => self.idmp_state = true,
            RdbEvent::StreamIdmpStats { added, duplicates } if added > 0 || duplicates > 0 => {
                self.idmp_state = true
            }
            other => self.collect(other)?,
        }
        Ok(())
    }

    /// Hands an event of a collected value to the collector; writes the key at its end.
    fn collect(&mut self, ev: RdbEvent) -> Result<(), Error> {
        if let Some((info, value)) = self.collector.handle_event(ev)? {
            if self.mode != Mode::Collected {
                return Err("key end without key start".into());
            }
            self.mode = Mode::Idle;
            debug_assert_eq!(self.current.key, info.key);
            let key = std::mem::take(&mut self.current.key);
            let res = self.write_key(&key, &value, self.current.options, self.current.kind);
            self.current.key = key;
            res?;
        }
        Ok(())
    }

    fn start_key(&mut self, k: KeyRef<'_>) -> Result<(), Error> {
        self.flush_db(0, 0)?;
        self.writer()?;
        if std::mem::take(&mut self.key_meta) {
            return Err(format!(
                "key {}: Redis 8.6 key metadata cannot be written at rdb version {}",
                k.key.escape_ascii(),
                self.opts.version
            )
            .into());
        }
        let options = KeyOptions {
            expire_ms: k.expire.map(Expiry::as_millis),
            idle_s: k.idle_s,
            freq: k.freq,
        };
        self.idmp_state = false;
        self.current.set(&k, options);
        if let Some((how, len)) = Streamed::of(k.kind, k.len) {
            self.dedup.insert(self.db, k.key)?;
            let w = self.writer()?;
            match how {
                Streamed::ListNodes => w.begin_list_nodes(k.key, len, options)?,
                Streamed::List => w.begin_list(k.key, len, options)?,
                Streamed::Set => w.begin_set(k.key, len, options)?,
                Streamed::Zset => w.begin_zset(k.key, len, options)?,
                Streamed::Hash => w.begin_hash(k.key, len, options)?,
            }
            self.mode = Mode::Collection(how);
        } else if k.kind == ObjectKind::String {
            self.value.clear();
            self.mode = Mode::String {
                pieces: 0,
                lzf: false,
            };
        } else {
            self.mode = Mode::Collected;
            self.collector
                .handle_event(RdbEvent::KeyStart(k.to_key_info()))?;
        }
        Ok(())
    }

    fn end_key(&mut self) -> Result<(), Error> {
        match self.mode {
            Mode::Collection(how) => {
                self.mode = Mode::Idle;
                let w = self.writer()?;
                match how {
                    Streamed::ListNodes | Streamed::List => w.end_list()?,
                    Streamed::Set => w.end_set()?,
                    Streamed::Zset => w.end_zset()?,
                    Streamed::Hash => w.end_hash()?,
                }
                self.keys += 1;
            }
            Mode::StreamedString => {
                self.mode = Mode::Idle;
                self.writer()?.end_string()?;
                self.keys += 1;
            }
            Mode::String { pieces, lzf } => {
                self.mode = Mode::Idle;
                self.write_string(pieces, lzf)?;
                if self.value.capacity() > SHRINK_ABOVE {
                    self.value = Vec::new();
                }
            }
            Mode::Collected | Mode::Idle => self.collect(RdbEvent::KeyEnd)?,
        }
        Ok(())
    }

    /// Writes the string held in `value`, delivered in `pieces`.
    fn write_string(&mut self, pieces: u64, lzf: bool) -> Result<(), Error> {
        let len = self.value.len() as u64;
        let Current { key, options, .. } = &self.current;
        if !lzf && len > STREAM_STRING_ABOVE {
            // A long string that arrived within one read: copied through as the pieces of
            // one that spans reads are (see `Converter::settle`).
            self.dedup.insert(self.db, key)?;
            let w = self.writer.as_mut().ok_or("string without key start")?;
            w.begin_string(key, len, *options)?;
            w.string_chunk(&self.value)?;
            w.end_string()?;
        } else if collected_size(len, pieces) > self.opts.max_value_bytes {
            self.collect_string()?;
            return self.collect(RdbEvent::KeyEnd);
        } else {
            self.dedup.insert(self.db, key)?;
            let w = self.writer.as_mut().ok_or("string without key start")?;
            w.string(key, &self.value, *options)?;
        }
        self.keys += 1;
        Ok(())
    }

    /// An LZF-compressed string value: decompressed into `value` (into a reused buffer; on
    /// any problem the collector decodes it, giving the same error as before).
    fn lzf_string(&mut self, raw: RawRef<'_>) -> Result<(), Error> {
        let ulen = raw.decoded_len();
        let pieces = ulen.div_ceil(PARSE_CHUNK as u64);
        self.value.clear();
        let fits = collected_size(ulen, pieces) <= self.opts.max_value_bytes;
        let decoded = fits
            && if raw.is_compressed() {
                usize::try_from(ulen)
                    .is_ok_and(|n| lzf::decompress(raw.stored(), n, &mut self.value).is_ok())
            } else {
                self.value.extend_from_slice(raw.stored());
                true
            };
        if decoded {
            self.mode = Mode::String { pieces, lzf: true };
            return Ok(());
        }
        self.mode = Mode::Collected;
        let info = self.current.key_ref().to_key_info();
        self.collector.handle_event(RdbEvent::KeyStart(info))?;
        self.collect(RdbEvent::Raw(raw.to_owned_value()))
    }

    /// After each read, for a string value still arriving (`left` bytes to come): one whose
    /// whole length is over `STREAM_STRING_ABOVE` is copied through from now on, so no more
    /// than one read of it is held; a shorter one already over --max-value-bytes fails now,
    /// as it did when each piece went to the collector.
    fn settle(&mut self, left: u64) -> Result<(), Error> {
        let Mode::String { pieces, lzf: false } = self.mode else {
            return Ok(());
        };
        let total = self.value.len() as u64 + left;
        if pieces == 0 {
            return Ok(());
        }
        if total <= STREAM_STRING_ABOVE {
            if collected_size(self.value.len() as u64, pieces) > self.opts.max_value_bytes {
                return self.collect_string();
            }
            return Ok(());
        }
        self.dedup.insert(self.db, &self.current.key)?;
        let w = self.writer.as_mut().ok_or("string without key start")?;
        w.begin_string(&self.current.key, total, self.current.options)?;
        w.string_chunk(&self.value)?;
        self.value.clear();
        if self.value.capacity() > SHRINK_ABOVE {
            self.value = Vec::new();
        }
        self.mode = Mode::StreamedString;
        Ok(())
    }

    /// Hands the string held so far to the collector, in the pieces it came in: used when
    /// it is over --max-value-bytes, so that the error is the collector's own.
    fn collect_string(&mut self) -> Result<(), Error> {
        self.mode = Mode::Collected;
        let info = self.current.key_ref().to_key_info();
        self.collector.handle_event(RdbEvent::KeyStart(info))?;
        let value = std::mem::take(&mut self.value);
        for piece in value.chunks(PARSE_CHUNK) {
            self.collect(RdbEvent::StringChunk(Bytes::copy_from_slice(piece)))?;
        }
        Ok(())
    }

    /// One item (or a quicklist node, possibly lazy) of the collection being streamed; a
    /// quicklist node is closed after it.
    fn collection_item(
        &mut self,
        how: Streamed,
        f: impl FnOnce(&mut Items<'_>) -> Result<(), respsync::rdb::RdbError>,
    ) -> Result<(), Error> {
        let mut items = Items {
            w: self.writer()?,
            set: how == Streamed::Set,
            err: None,
        };
        // A value that does not decode fails before anything it holds is reported.
        f(&mut items)?;
        if let Some(e) = items.err {
            return Err(e);
        }
        if how == Streamed::ListNodes {
            self.writer()?.end_list_node()?;
        }
        Ok(())
    }

    fn write_key(
        &mut self,
        key: &[u8],
        value: &Value,
        options: KeyOptions,
        kind: ObjectKind,
    ) -> Result<(), Error> {
        if self.idmp_state {
            return Err(format!(
                "key {}: rdb version {} cannot hold the stream's idempotent-producer state",
                key.escape_ascii(),
                self.opts.version
            )
            .into());
        }
        let lossy = self.opts.lossy;
        let w = self.writer()?;
        if lossy {
            if let Some(what) = w.would_lose(value) {
                eprintln!(
                    "rdb-convert: warning: key {}: {what} not kept at rdb version {}",
                    key.escape_ascii(),
                    w.version()
                );
            }
        }
        if matches!(value, Value::Module(_)) {
            eprintln!(
                "rdb-convert: note: key {} ({}) is a module value; the target needs the module",
                key.escape_ascii(),
                kind.encoding_name()
            );
        }
        self.dedup.insert(self.db, key)?;
        let w = self.writer()?;
        w.key(key, value, options)?;
        self.keys += 1;
        Ok(())
    }
}

/// What the collector counts against --max-value-bytes for a string of `len` bytes delivered
/// in `pieces`: the bytes plus its fixed overhead per piece.
fn collected_size(len: u64, pieces: u64) -> u64 {
    len.saturating_add(pieces.saturating_mul(COLLECTOR_OVERHEAD))
}

/// The parser hands keys, strings and collection items over borrowed: strings and streamed
/// collections go straight to the writer; other values are built by the collector.
impl Visitor for Converter<'_> {
    fn event(&mut self, ev: RdbEvent) {
        self.guard(|c| c.handle_event(ev));
    }

    fn key_start(&mut self, k: KeyRef<'_>) {
        self.guard(|c| c.start_key(k));
    }

    fn string_chunk(&mut self, data: &[u8]) {
        self.guard(|c| match &mut c.mode {
            Mode::StreamedString => Ok(c.writer()?.string_chunk(data)?),
            Mode::String { pieces, lzf: false } => {
                *pieces += 1;
                c.value.extend_from_slice(data);
                Ok(())
            }
            _ => c.collect(RdbEvent::StringChunk(Bytes::copy_from_slice(data))),
        });
    }

    fn element(&mut self, e: &[u8]) {
        self.guard(|c| match c.mode {
            Mode::Collection(how) => c.collection_item(how, |i| {
                i.element(e);
                Ok(())
            }),
            _ => c.collect(RdbEvent::Element(Bytes::copy_from_slice(e))),
        });
    }

    fn zset_member(&mut self, member: &[u8], score: f64) {
        self.guard(|c| match c.mode {
            Mode::Collection(how) => c.collection_item(how, |i| {
                i.zset_member(member, score);
                Ok(())
            }),
            _ => c.collect(RdbEvent::ZsetMember {
                member: Bytes::copy_from_slice(member),
                score,
            }),
        });
    }

    fn hash_field(&mut self, field: &[u8], value: &[u8], expire_ms: Option<i64>) {
        self.guard(|c| match c.mode {
            Mode::Collection(how) => c.collection_item(how, |i| {
                i.hash_field(field, value, expire_ms);
                Ok(())
            }),
            _ => c.collect(RdbEvent::HashField {
                field: Bytes::copy_from_slice(field),
                value: Bytes::copy_from_slice(value),
                expire_ms,
            }),
        });
    }

    fn raw_value(&mut self, raw: RawRef<'_>) {
        self.guard(|c| match c.mode {
            Mode::Collection(how) => c.collection_item(how, |i| raw.decode(i)),
            Mode::String { .. } => c.lzf_string(raw),
            _ => c.collect(RdbEvent::Raw(raw.to_owned_value())),
        });
    }

    fn key_end(&mut self) {
        self.guard(|c| c.end_key());
    }
}

fn run(opts: &Options) -> Result<u64, Error> {
    let config = WriterConfig {
        version: opts.version,
        allow_lossy: opts.lossy,
        ..WriterConfig::default()
    };
    // Check the version before creating OUT.
    Writer::new(config.clone())?;
    let mut input: Box<dyn Read> = if opts.input == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(&opts.input)?)
    };
    let out = File::create(&opts.output)?;
    let mut conv = Converter {
        opts,
        config: Some(config),
        aux: Vec::new(),
        writer: None,
        collector: Collector::new(opts.max_value_bytes),
        pending_db: None,
        key_meta: false,
        idmp_state: false,
        current: Current {
            key: Vec::new(),
            options: KeyOptions::default(),
            kind: ObjectKind::String,
            db: 0,
            expire: None,
            offset: 0,
            len: None,
        },
        mode: Mode::Idle,
        value: Vec::new(),
        module_aux: None,
        keys: 0,
        dedup: Dedup::new(opts.dedup_bytes, opts.max_suspects),
        db: 0,
        out,
        failed: None,
    };
    let mut parser = Parser::new(parser_config(opts));
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = read_full(&mut input, &mut buf)?;
        // The borrowing visitor over the read buffer: the parser's fastest path.
        let res = if n == 0 {
            parser.finish();
            parser.parse_with(&mut conv)
        } else {
            parser.feed_with(&buf[..n], &mut conv)
        };
        // A callback's error came before anything the parser found after it.
        if let Some(e) = conv.failed.take() {
            return Err(e);
        }
        res?;
        conv.settle(parser.string_remaining())?;
        conv.drain()?;
        if n == 0 || parser.is_done() {
            break;
        }
    }
    if !parser.is_done() {
        return Err("input ended before the end of the rdb file".into());
    }
    conv.flush_db(0, 0)?;
    let last = conv.writer()?.finish()?;
    conv.out.write_all(&last)?;
    conv.out.sync_all()?;
    check_suspects(opts, std::mem::take(&mut conv.dedup.suspects))?;
    Ok(conv.keys)
}

fn parser_config(opts: &Options) -> ParserConfig {
    let mut config = ParserConfig::default();
    // Quicklist nodes arrive whole (one callback per node), and nothing is decoded twice.
    config
        .allow_newer_versions(opts.allow_newer)
        .lazy_values(true)
        .chunk_size(PARSE_CHUNK);
    config
}

/// The exact re-check of the keys the filter flagged: a second pass over IN counting them.
fn check_suspects(opts: &Options, suspects: HashSet<(u64, Bytes)>) -> Result<(), Error> {
    let Some((db, key)) = suspects.iter().next() else {
        return Ok(());
    };
    if opts.input == "-" {
        return Err(format!(
            "key {} in db {db} is possibly a duplicate, and stdin cannot be read twice to \
             check; convert from a file, or raise --dedup-bytes",
            key.escape_ascii()
        )
        .into());
    }
    // Per database, the suspects and how often each was seen; stops at the first seen twice.
    let mut seen: HashMap<u64, HashMap<Bytes, u32>> = HashMap::new();
    for (db, key) in suspects {
        seen.entry(db).or_default().insert(key, 0);
    }
    let failed: RefCell<Option<Error>> = RefCell::new(None);
    let mut recheck = KeysOnly(|k: KeyRef<'_>| {
        let Some(n) = seen.get_mut(&k.db).and_then(|m| m.get_mut(k.key)) else {
            return;
        };
        *n += 1;
        let mut failed = failed.borrow_mut();
        if *n > 1 && failed.is_none() {
            *failed = Some(
                format!(
                    "key {} appears twice in db {} (Redis refuses such a file)",
                    k.key.escape_ascii(),
                    k.db
                )
                .into(),
            );
        }
    });
    let mut input = File::open(&opts.input)?;
    let mut parser = Parser::new(parser_config(opts));
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let n = read_full(&mut input, &mut buf)?;
        let res = if n == 0 {
            parser.finish();
            parser.parse_with(&mut recheck)
        } else {
            parser.feed_with(&buf[..n], &mut recheck)
        };
        if let Some(e) = failed.borrow_mut().take() {
            return Err(e);
        }
        res?;
        if parser.is_done() {
            return Ok(());
        }
    }
}
