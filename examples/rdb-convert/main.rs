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
//! Memory: the file is streamed (pushed to the parser as `Bytes`, parsed in place, values
//! decoded only when needed); besides the filter, nothing grows with the file. Strings over
//! 1 MiB are copied through in pieces; collections whose record stores a count (hash-table
//! sets and hashes, skiplist zsets, linked lists) are written item by item with the writer's
//! streaming calls, and quicklists node by node (keeping the source's node layout, each node
//! re-encoded for the target). Other values (small single-blob encodings, streams, hashes
//! with field TTLs, module values) are held one at a time (at most `--max-value-bytes`,
//! default 4 GiB). Members and fields of a streamed collection are not checked for repeats.
//! On error OUT is removed; exit status 1.

#[path = "../rdb-dump/input.rs"]
mod input;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::process::ExitCode;

use bytes::{Bytes, BytesMut};
use input::read_chunk;
use respsync::rdb::{
    AuxFields, Collector, Expiry, KeyOptions, ModuleId, ObjectKind, Parser, ParserConfig, RdbEvent,
    ReplInfo, Value, Writer, WriterConfig,
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

fn usage() -> ExitCode {
    eprintln!(
        "usage: rdb-convert IN OUT [--rdb-version N] [--lossy] [--no-repl-info] [--max-value-bytes N]\n\
         \x20      [--dedup-bytes N] [--max-suspects N] [--allow-newer]"
    );
    ExitCode::from(2)
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
            "--dedup-bytes" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => dedup_bytes = v,
                None => return usage(),
            },
            "--max-suspects" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => max_suspects = v,
                None => return usage(),
            },
            "--allow-newer" => allow_newer = true,
            "--rdb-version" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => version = v,
                None => return usage(),
            },
            "--max-value-bytes" => match args.next().and_then(|v| v.parse().ok()) {
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
    current: Option<(Bytes, KeyOptions, ObjectKind)>,
    /// A `MODULE_AUX` record being collected: module, `when`, raw opcode stream.
    module_aux: Option<(ModuleId, u64, Vec<u8>)>,
    keys: u64,
    /// Refuses duplicate keys (Redis refuses a file with one) in bounded memory.
    dedup: Dedup,
    db: u64,
    out: File,
    /// A string value being copied through in pieces (over `STREAM_STRING_ABOVE`).
    streaming: bool,
    /// A collection being copied through item by item.
    collection: Option<Streamed>,
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

    /// Handles one event; `string_left` tells how much of the current string value is still
    /// to come after a `StringChunk`.
    fn event(&mut self, ev: RdbEvent, string_left: impl Fn() -> u64) -> Result<(), Error> {
        match ev {
            RdbEvent::KeyEnd if self.collection.is_some() => {
                let how = self.collection.take();
                let w = self.writer()?;
                match how {
                    Some(Streamed::ListNodes | Streamed::List) => w.end_list()?,
                    Some(Streamed::Set) => w.end_set()?,
                    Some(Streamed::Zset) => w.end_zset()?,
                    Some(Streamed::Hash) => w.end_hash()?,
                    None => {}
                }
                self.current = None;
                self.keys += 1;
            }
            ev @ (RdbEvent::Element(_)
            | RdbEvent::ZsetMember { .. }
            | RdbEvent::HashField { .. }
            | RdbEvent::Raw(_))
                if self.collection.is_some() =>
            {
                self.collection_item(ev)?;
                if self.collection == Some(Streamed::ListNodes) {
                    self.writer()?.end_list_node()?;
                }
            }
            RdbEvent::StringChunk(chunk) if self.streaming => {
                self.writer()?.string_chunk(&chunk)?;
            }
            RdbEvent::KeyEnd if self.streaming => {
                self.streaming = false;
                self.current = None;
                self.writer()?.end_string()?;
                self.keys += 1;
            }
            RdbEvent::StringChunk(chunk)
                if self.current.is_some()
                    && chunk.len() as u64 + string_left() > STREAM_STRING_ABOVE =>
            {
                // The first piece of a long string: copy it through rather than hold it.
                let total = chunk.len() as u64 + string_left();
                let Some((key, options, _)) = self.current.clone() else {
                    return Err("string without key start".into());
                };
                self.dedup.insert(self.db, &key)?;
                let w = self.writer()?;
                w.begin_string(&key, total, options)?;
                w.string_chunk(&chunk)?;
                self.streaming = true;
            }
            RdbEvent::Header { .. } => {}
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
            RdbEvent::KeyStart(info) => {
                self.flush_db(0, 0)?;
                self.writer()?;
                if std::mem::take(&mut self.key_meta) {
                    return Err(format!(
                        "key {}: Redis 8.6 key metadata cannot be written at rdb version {}",
                        info.key.escape_ascii(),
                        self.opts.version
                    )
                    .into());
                }
                let options = KeyOptions {
                    expire_ms: info.expire.map(Expiry::as_millis),
                    idle_s: info.idle_s,
                    freq: info.freq,
                };
                self.idmp_state = false;
                if let Some((how, len)) = Streamed::of(info.kind, info.len) {
                    self.dedup.insert(self.db, &info.key)?;
                    let w = self.writer()?;
                    match how {
                        Streamed::ListNodes => w.begin_list_nodes(&info.key, len, options)?,
                        Streamed::List => w.begin_list(&info.key, len, options)?,
                        Streamed::Set => w.begin_set(&info.key, len, options)?,
                        Streamed::Zset => w.begin_zset(&info.key, len, options)?,
                        Streamed::Hash => w.begin_hash(&info.key, len, options)?,
                    }
                    self.collection = Some(how);
                    self.current = Some((info.key, options, info.kind));
                    return Ok(());
                }
                self.current = Some((info.key.clone(), options, info.kind));
                self.collector.handle_event(RdbEvent::KeyStart(info))?;
            }
            RdbEvent::StreamIdmp { producers, .. } if producers > 0 => self.idmp_state = true,
            RdbEvent::StreamIdmpStats { added, duplicates } if added > 0 || duplicates > 0 => {
                self.idmp_state = true
            }
            RdbEvent::End { .. } => {}
            other => {
                if let Some((info, value)) = self.collector.handle_event(other)? {
                    let Some((key, options, kind)) = self.current.take() else {
                        return Err("key end without key start".into());
                    };
                    debug_assert_eq!(key, info.key);
                    self.write_key(&key, &value, options, kind)?;
                }
            }
        }
        Ok(())
    }

    /// One item (or, in a quicklist, one node) of the collection being streamed; lazy values
    /// (quicklist nodes, compressed elements) are decoded here.
    fn collection_item(&mut self, ev: RdbEvent) -> Result<(), Error> {
        let how = self.collection;
        let w = self.writer()?;
        match ev {
            RdbEvent::Element(e) => match how {
                Some(Streamed::Set) => w.set_member(&e)?,
                _ => w.list_element(&e)?,
            },
            RdbEvent::ZsetMember { member, score } => w.zset_member(&member, score)?,
            RdbEvent::HashField {
                field,
                value,
                expire_ms: None,
            } => w.hash_field(&field, &value)?,
            RdbEvent::Raw(raw) => {
                for ev in raw.events()? {
                    self.collection_item(ev)?;
                }
            }
            RdbEvent::StringChunk(piece) => {
                // A decoded compressed element, in one piece.
                return self.collection_item(RdbEvent::Element(piece));
            }
            other => return Err(format!("unexpected {other:?} in a collection").into()),
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
        current: None,
        module_aux: None,
        keys: 0,
        dedup: Dedup::new(opts.dedup_bytes, opts.max_suspects),
        db: 0,
        out,
        streaming: false,
        collection: None,
    };
    let mut parser = Parser::new(parser_config(opts));
    let mut buf = BytesMut::new();
    loop {
        let chunk = read_chunk(&mut input, &mut buf)?;
        let n = chunk.len();
        if n == 0 {
            parser.finish();
        } else {
            parser.push_bytes(chunk);
        }
        while let Some(ev) = parser.poll_event()? {
            conv.event(ev, || parser.string_remaining())?;
        }
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
    // Quicklist nodes arrive whole (one event per node), and nothing is decoded twice.
    config
        .allow_newer_versions(opts.allow_newer)
        .lazy_values(true);
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
    let mut seen: HashMap<(u64, Bytes), u32> = suspects.into_iter().map(|k| (k, 0)).collect();
    let mut input = File::open(&opts.input)?;
    let mut parser = Parser::new(parser_config(opts));
    let mut buf = BytesMut::new();
    let mut db = 0;
    loop {
        let chunk = read_chunk(&mut input, &mut buf)?;
        if chunk.is_empty() {
            parser.finish();
        } else {
            parser.push_bytes(chunk);
        }
        while let Some(ev) = parser.poll_event()? {
            match ev {
                RdbEvent::SelectDb { db: d } => db = d,
                RdbEvent::KeyStart(info) => {
                    if let Some(n) = seen.get_mut(&(db, info.key.clone())) {
                        *n += 1;
                        if *n > 1 {
                            return Err(format!(
                                "key {} appears twice in db {db} (Redis refuses such a file)",
                                info.key.escape_ascii()
                            )
                            .into());
                        }
                    }
                }
                _ => {}
            }
        }
        if parser.is_done() {
            return Ok(());
        }
    }
}
