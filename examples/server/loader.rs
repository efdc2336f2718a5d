//! Loads an RDB snapshot into a fresh [`Store`] through the crate's push parser and collect
//! layer. The snapshot is fed in chunks as it arrives from the master, parsed outside the server
//! lock, and the finished store is swapped in at the end, so clients keep reading the old data
//! meanwhile (as a Redis replica does with `repl-diskless-load disabled`).

use std::collections::{BTreeMap, VecDeque};

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use bytes::Bytes;
use respsync::rdb::{self, Collector, KeyRef, Parser, ParserConfig, RdbError, RdbEvent, Visitor};

use crate::app::store::{self, Blob, Opaque, Store, Value};

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

/// A snapshot being loaded: the parser and the [`Sink`] its borrowed callbacks fill.
pub struct Loader {
    parser: Parser,
    sink: Sink,
}

/// Receives the parse through the crate's borrowing [`Visitor`]: string keys (the bulk of a
/// typical dataset) are copied once, straight from the parser's buffer into the stored boxes;
/// other kinds go through the collect layer as owned events.
struct Sink {
    collector: Collector,
    /// Finished keys go to the inserter thread in batches.
    tx: SyncSender<Msg>,
    batch: Vec<Item>,
    done: bool,
    current_db: usize,
    /// A string key being received: database, key, expiry and the value so far.
    string: Option<(u64, Blob, Option<i64>, Vec<u8>)>,
    /// The first error the collect layer reported.
    failed: Option<RdbError>,
    /// The replication aux fields seen so far.
    repl: ReplAux,
}

/// The replication aux fields of a snapshot (`repl-id`, `repl-offset`, `repl-stream-db`): what a
/// server restarted from its own RDB resumes replication from.
#[derive(Debug, Default, Clone)]
pub struct ReplAux {
    pub id: Option<String>,
    pub offset: Option<i64>,
    pub stream_db: Option<u32>,
}

impl Loader {
    fn new(tx: SyncSender<Msg>) -> Loader {
        Loader {
            parser: Parser::new(ParserConfig::default()),
            sink: Sink {
                collector: Collector::new(MAX_VALUE_BYTES),
                tx,
                batch: Vec::with_capacity(BATCH),
                done: false,
                current_db: 0,
                string: None,
                failed: None,
                repl: ReplAux::default(),
            },
        }
    }

    /// Feeds the next bytes of the file (parsed where they lie when nothing is buffered).
    pub fn push(&mut self, data: &[u8]) -> Result<(), LoadError> {
        self.parser.feed_with(data, &mut self.sink)?;
        self.check()
    }

    /// Ends the file: checks it was complete and hands the last keys to the inserter.
    pub fn finish(mut self) -> Result<ReplAux, LoadError> {
        self.parser.finish();
        self.parser.parse_with(&mut self.sink)?;
        self.check()?;
        if !self.sink.done {
            return Err(LoadError::Truncated);
        }
        self.sink.flush();
        Ok(std::mem::take(&mut self.sink.repl))
    }

    fn check(&mut self) -> Result<(), LoadError> {
        match self.sink.failed.take() {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl Visitor for Sink {
    fn event(&mut self, ev: RdbEvent) {
        match ev {
            RdbEvent::ResizeDb { keys, .. } => {
                // Pre-size the current database from the count the file announces (capped).
                self.flush();
                let _ = self.tx.send(Msg::Reserve(self.current_db, keys));
            }
            RdbEvent::SelectDb { db } => {
                self.current_db = usize::try_from(db).unwrap_or(usize::MAX);
            }
            // The replication fields matter when a server restarts from its own file; during
            // a full sync the session already knows them from the FULLRESYNC reply.
            RdbEvent::Aux { name, value } => {
                let text = String::from_utf8_lossy(&value);
                match &name[..] {
                    b"repl-id" => self.repl.id = Some(text.into_owned()),
                    b"repl-offset" => self.repl.offset = text.parse().ok(),
                    b"repl-stream-db" => self.repl.stream_db = text.parse().ok(),
                    _ => {}
                }
            }
            RdbEvent::End { .. } => self.done = true,
            ev => match self.collector.handle_event(ev) {
                Ok(Some((info, value))) => {
                    let expire = info.expire.map(|e| e.as_millis());
                    self.insert(info.db, to_blob(info.key), convert(value), expire);
                }
                Ok(None) => {}
                Err(e) => {
                    self.failed.get_or_insert(e);
                }
            },
        }
    }

    fn key_start(&mut self, key: KeyRef<'_>) {
        if key.kind.value_type() == rdb::ValueType::String {
            let expire = key.expire.map(|e| e.as_millis());
            self.string = Some((key.db, Blob::from(key.key), expire, Vec::new()));
        } else {
            self.event(RdbEvent::KeyStart(key.to_key_info()));
        }
    }

    fn string_chunk(&mut self, data: &[u8]) {
        match &mut self.string {
            // One chunk is the common case: the vector is allocated at its exact size.
            Some((.., value)) => value.extend_from_slice(data),
            None => self.event(RdbEvent::StringChunk(Bytes::copy_from_slice(data))),
        }
    }

    fn key_end(&mut self) {
        match self.string.take() {
            Some((db, key, expire, value)) => {
                self.insert(db, key, Value::Str(value.into_boxed_slice()), expire)
            }
            None => self.event(RdbEvent::KeyEnd),
        }
    }
}

impl Sink {
    fn insert(&mut self, db: u64, key: Blob, value: Value, expire: Option<i64>) {
        let Ok(db) = usize::try_from(db) else {
            return;
        };
        self.batch.push((db, key, value, expire));
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            // The inserter only stops when this sender is dropped.
            let _ = self.tx.send(Msg::Keys(batch));
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
            let mut hash = Box::<store::Hash>::default();
            hash.reserve(h.len());
            // Field TTLs (RDB 12) are kept, expired ones included: a replica waits for its
            // master's HDEL, and a master's own expiry deletes (and propagates) them.
            for e in h {
                hash.insert_with_expire(to_blob(e.field), to_blob(e.value), e.expire_ms);
            }
            Value::Hash(hash)
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

/// A loaded snapshot.
pub struct Loaded {
    pub store: Store,
    pub keys: u64,
    pub repl: ReplAux,
}

/// Loads an RDB file from disk (a server's own `dir/dbfilename` at start-up).
pub fn load_file(path: &std::path::Path, databases: usize) -> Result<Loaded, LoadError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|_| LoadError::Truncated)?;
    let bg = Background::start(databases);
    loop {
        let mut buf = vec![0u8; 1 << 20];
        let n = f.read(&mut buf).map_err(|_| LoadError::Truncated)?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        if !bg.push(Bytes::from(buf)) {
            break;
        }
    }
    bg.finish()
}

/// A snapshot loaded on two threads of its own, so that parsing overlaps with receiving and
/// with building the hash tables: the replication thread keeps reading the socket (and the
/// master keeps sending) while one thread parses chunks and another inserts the keys.
pub struct Background {
    tx: SyncSender<Bytes>,
    handle: std::thread::JoinHandle<Result<Loaded, LoadError>>,
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
            let repl = result?;
            let (store, keys) = built?;
            Ok(Loaded { store, keys, repl })
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
    pub fn finish(self) -> Result<Loaded, LoadError> {
        drop(self.tx);
        self.handle.join().unwrap_or(Err(LoadError::Truncated))
    }
}
