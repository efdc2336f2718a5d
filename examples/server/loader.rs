//! Loads an RDB snapshot into a fresh [`Store`] through the crate's push parser and collect
//! layer. The snapshot is fed in chunks as it arrives from the master, parsed outside the server
//! lock, and the finished store is swapped in at the end, so clients keep reading the old data
//! meanwhile (as a Redis replica does with `repl-diskless-load disabled`).

use std::collections::{BTreeMap, VecDeque};

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use bytes::Bytes;
use respsync::rdb::{self, Collector, Parser, ParserConfig, RdbError, RdbEvent};

use crate::store::{self, Blob, Opaque, Store, Value};

/// Largest value collected whole (Redis's `proto-max-bulk-len` is 512 MB per string; a
/// collection may be bigger, this server keeps each whole in memory anyway).
const MAX_VALUE_BYTES: u64 = 4 << 30;

/// Why a snapshot could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Rdb(RdbError),
    Truncated,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Rdb(e) => write!(f, "{e}"),
            LoadError::Truncated => f.write_str("snapshot ended before its end marker"),
        }
    }
}

impl From<RdbError> for LoadError {
    fn from(e: RdbError) -> Self {
        LoadError::Rdb(e)
    }
}

/// A snapshot being loaded.
pub struct Loader {
    parser: Parser,
    collector: Collector,
    /// Finished keys go to the inserter thread in batches.
    tx: SyncSender<Msg>,
    batch: Vec<Item>,
    done: bool,
    current_db: usize,
    /// A string key being received: strings skip the collect layer (one chunk is the common
    /// case, and its bytes become the stored value without a copy).
    string: Option<(rdb::KeyInfo, Vec<Bytes>)>,
    /// `repl-id` / `repl-offset` aux fields, for a later restart from a saved file.
    pub aux: Vec<(Bytes, Bytes)>,
}

impl Loader {
    fn new(tx: SyncSender<Msg>) -> Loader {
        Loader {
            parser: Parser::new(ParserConfig::default()),
            collector: Collector::new(MAX_VALUE_BYTES),
            tx,
            batch: Vec::with_capacity(BATCH),
            done: false,
            current_db: 0,
            string: None,
            aux: Vec::new(),
        }
    }

    /// Feeds the next bytes of the file.
    pub fn push(&mut self, data: &[u8]) -> Result<(), LoadError> {
        self.parser.push(data);
        self.drain()
    }

    /// Ends the file: checks it was complete and hands the last keys to the inserter.
    pub fn finish(mut self) -> Result<(), LoadError> {
        self.parser.finish();
        self.drain()?;
        if !self.done {
            return Err(LoadError::Truncated);
        }
        self.flush();
        Ok(())
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            // The inserter only stops when this sender is dropped.
            let _ = self.tx.send(Msg::Keys(batch));
        }
    }

    fn drain(&mut self) -> Result<(), LoadError> {
        while let Some(ev) = self.parser.poll_event()? {
            match ev {
                RdbEvent::ResizeDb { keys, .. } => {
                    // Pre-size the current database from the count the file announces (capped).
                    self.flush();
                    let _ = self.tx.send(Msg::Reserve(self.current_db, keys));
                }
                RdbEvent::SelectDb { db } => {
                    self.current_db = usize::try_from(db).unwrap_or(usize::MAX);
                }
                RdbEvent::Aux { name, value } => self.aux.push((name, value)),
                RdbEvent::End { .. } => self.done = true,
                RdbEvent::KeyStart(info) if info.kind.value_type() == rdb::ValueType::String => {
                    self.string = Some((info, Vec::new()));
                }
                RdbEvent::StringChunk(b) if self.string.is_some() => {
                    if let Some((_, parts)) = &mut self.string {
                        parts.push(b);
                    }
                }
                RdbEvent::KeyEnd if self.string.is_some() => {
                    if let Some((info, mut parts)) = self.string.take() {
                        let value = if parts.len() == 1 {
                            parts.pop().map(to_blob).unwrap_or_default()
                        } else {
                            parts.concat().into_boxed_slice()
                        };
                        self.insert(info, Value::Str(value));
                    }
                }
                ev => {
                    if let Some((info, value)) = self.collector.handle_event(ev)? {
                        self.insert(info, convert(value));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Loader {
    fn insert(&mut self, info: rdb::KeyInfo, value: Value) {
        let Ok(db) = usize::try_from(info.db) else {
            return;
        };
        let expire = info.expire.map(|e| e.as_millis());
        self.batch.push((db, to_blob(info.key), value, expire));
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }
}

/// Takes the bytes without copying when the `Bytes` is the sole owner of a whole buffer.
fn to_blob(b: Bytes) -> Blob {
    Vec::from(b).into_boxed_slice()
}

fn id(i: rdb::StreamId) -> store::StreamId {
    store::StreamId {
        ms: i.ms,
        seq: i.seq,
    }
}

/// Converts a collected RDB value to this server's representation.
pub fn convert(v: rdb::Value) -> Value {
    match v {
        rdb::Value::String(s) => Value::Str(to_blob(s)),
        rdb::Value::List(l) => Value::List(Box::new(
            l.into_iter().map(to_blob).collect::<VecDeque<_>>(),
        )),
        rdb::Value::Set(s) => {
            let mut set = store::FastSet::default();
            set.reserve(s.len());
            set.extend(s.into_iter().map(to_blob));
            Value::Set(Box::new(set))
        }
        rdb::Value::Hash(h) => {
            let mut map = store::FastMap::default();
            map.reserve(h.len());
            // Per-field TTLs (Redis 7.4+) are not kept: this server serves Redis 7.0 semantics.
            map.extend(h.into_iter().map(|e| (to_blob(e.field), to_blob(e.value))));
            Value::Hash(Box::new(map))
        }
        rdb::Value::Zset(z) => {
            let mut zs = Box::<store::ZSet>::default();
            for (m, s) in z {
                zs.insert(&m, s);
            }
            Value::ZSet(zs)
        }
        rdb::Value::Stream(s) => {
            let s = *s;
            let mut st = Box::<store::Stream>::default();
            st.entries = s
                .entries
                .into_iter()
                .map(|e| {
                    (
                        id(e.id),
                        e.fields
                            .into_iter()
                            .map(|(f, v)| (to_blob(f), to_blob(v)))
                            .collect(),
                    )
                })
                .collect::<BTreeMap<_, _>>();
            st.last_id = id(s.meta.last_id);
            st.first_id = s.meta.first_id.map(id).unwrap_or_default();
            st.max_deleted_id = s.meta.max_deleted_id.map(id).unwrap_or_default();
            st.entries_added = s.meta.entries_added.unwrap_or(s.meta.length);
            for g in s.groups {
                let mut group = store::Group {
                    name: to_blob(g.info.name),
                    last_id: id(g.info.last_id),
                    entries_read: g.info.entries_read.map_or(-1, |n| n as i64),
                    pending: BTreeMap::new(),
                    consumers: Vec::new(),
                };
                for p in g.pending {
                    group.pending.insert(
                        id(p.id),
                        store::Pending {
                            consumer: Blob::default(),
                            delivery_time: p.delivery_time_ms,
                            delivery_count: p.delivery_count,
                        },
                    );
                }
                for c in g.consumers {
                    let name = to_blob(c.info.name);
                    let mut pending = std::collections::BTreeSet::new();
                    for pid in c.pending {
                        let pid = id(pid);
                        if let Some(p) = group.pending.get_mut(&pid) {
                            p.consumer = name.clone();
                        }
                        pending.insert(pid);
                    }
                    group.consumers.push(store::Consumer {
                        name,
                        seen_time: c.info.seen_time_ms,
                        pending,
                    });
                }
                st.groups.push(group);
            }
            Value::Stream(st)
        }
        rdb::Value::Module(m) => Value::Opaque(Box::new(Opaque {
            type_name: m.id.name(),
            dump: m.raw,
        })),
        // A value kind this server does not know yet: keep nothing servable.
        _ => Value::Opaque(Box::new(Opaque {
            type_name: "unknown".into(),
            dump: Bytes::new(),
        })),
    }
}

/// Keys handed from the parser thread to the inserter thread at a time.
const BATCH: usize = 1024;

/// One parsed key: database, name, value, expiry.
type Item = (usize, Blob, Value, Option<i64>);

/// What the parser thread sends to the inserter thread.
enum Msg {
    Reserve(usize, u64),
    Keys(Vec<Item>),
}

/// Builds the store from parsed keys; returns it with the number of keys loaded.
fn insert_all(rx: Receiver<Msg>, databases: usize) -> (Store, u64) {
    let mut store = Store::new(databases);
    let mut keys = 0;
    for msg in rx {
        match msg {
            Msg::Reserve(db, n) => {
                if let Some(db) = store.dbs.get_mut(db) {
                    db.reserve(n);
                }
            }
            Msg::Keys(batch) => {
                for (db, key, value, expire) in batch {
                    if let Some(db) = store.dbs.get_mut(db) {
                        db.load(key, value, expire);
                        keys += 1;
                    }
                }
            }
        }
    }
    (store, keys)
}

/// A snapshot loaded on two threads of its own, so that parsing overlaps with receiving and
/// with building the hash tables: the replication thread keeps reading the socket (and the
/// master keeps sending) while one thread parses chunks and another inserts the keys.
pub struct Background {
    tx: SyncSender<Bytes>,
    handle: std::thread::JoinHandle<Result<(Store, u64), LoadError>>,
}

impl Background {
    /// At most this many chunks wait for the parser (bounded memory).
    const QUEUE: usize = 64;

    pub fn start(databases: usize) -> Background {
        let (tx, rx) = sync_channel::<Bytes>(Self::QUEUE);
        let handle = std::thread::spawn(move || {
            let (ktx, krx) = sync_channel::<Msg>(16);
            let inserter = std::thread::spawn(move || insert_all(krx, databases));
            let mut loader = Loader::new(ktx);
            let mut result = Ok(());
            for chunk in rx {
                result = loader.push(&chunk);
                if result.is_err() {
                    break;
                }
            }
            let result = result.and_then(|()| loader.finish());
            // `loader` (and its sender) is gone now, so the inserter ends.
            let built = inserter.join().map_err(|_| LoadError::Truncated);
            result.and(built)
        });
        Background { tx, handle }
    }
    /// Queues a chunk; false if the parser already stopped on an error (see [`finish`]).
    ///
    /// [`finish`]: Background::finish
    pub fn push(&self, data: Bytes) -> bool {
        self.tx.send(data).is_ok()
    }

    /// Waits for the parser to reach the end of the file.
    pub fn finish(self) -> Result<(Store, u64), LoadError> {
        drop(self.tx);
        self.handle.join().unwrap_or(Err(LoadError::Truncated))
    }
}
