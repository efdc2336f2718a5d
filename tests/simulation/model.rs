//! The simulated servers' data: a small model store of four types, the commands that change
//! it, and its snapshots written with `rdb::Writer` and read back with `rdb::Parser` +
//! `Collector` (the same path a real replica takes).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use respsync::rdb::{
    Collector, HashEntry, KeyOptions, Parser, ParserConfig, RdbEvent, ReplInfo, Value, Writer,
    WriterConfig,
};

/// Databases every simulated server has (kept small so that SELECTs are frequent).
pub const DATABASES: u32 = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Str(Bytes),
    List(Vec<Bytes>),
    Set(BTreeSet<Bytes>),
    Hash(BTreeMap<Bytes, Bytes>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub val: Val,
    /// Absolute expiry (ms since the epoch of the simulated wall clock).
    pub expire_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub dbs: Vec<BTreeMap<Bytes, Entry>>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            dbs: (0..DATABASES).map(|_| BTreeMap::new()).collect(),
        }
    }
}

fn int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

impl Store {
    pub fn keys(&self) -> usize {
        self.dbs.iter().map(BTreeMap::len).sum()
    }

    /// Applies one write command as Redis would; `Err` for a command a master would refuse
    /// (then it is not propagated) or a replica could not apply (a bug).
    pub fn apply(&mut self, db: u32, argv: &[Bytes]) -> Result<(), String> {
        let Some(map) = self.dbs.get_mut(db as usize) else {
            return Err(format!("db {db} out of range"));
        };
        let name = argv
            .first()
            .map(|n| n.to_ascii_uppercase())
            .unwrap_or_default();
        let wrong = || Err(format!("WRONGTYPE {}", String::from_utf8_lossy(&name)));
        let arity = |n: usize| {
            if argv.len() < n {
                Err(format!("arity of {}", String::from_utf8_lossy(&name)))
            } else {
                Ok(())
            }
        };
        match &name[..] {
            b"SET" => {
                arity(3)?;
                map.insert(
                    argv[1].clone(),
                    Entry {
                        val: Val::Str(argv[2].clone()),
                        expire_ms: None,
                    },
                );
            }
            b"DEL" => {
                arity(2)?;
                for k in &argv[1..] {
                    map.remove(k);
                }
            }
            b"INCR" => {
                arity(2)?;
                let e = map.entry(argv[1].clone()).or_insert(Entry {
                    val: Val::Str(Bytes::from_static(b"0")),
                    expire_ms: None,
                });
                let Val::Str(s) = &e.val else { return wrong() };
                let Some(n) = int(s) else {
                    return Err("not an integer".into());
                };
                e.val = Val::Str(Bytes::from((n + 1).to_string()));
            }
            b"RPUSH" => {
                arity(3)?;
                let e = map.entry(argv[1].clone()).or_insert(Entry {
                    val: Val::List(Vec::new()),
                    expire_ms: None,
                });
                let Val::List(l) = &mut e.val else {
                    return wrong();
                };
                l.extend(argv[2..].iter().cloned());
            }
            b"SADD" => {
                arity(3)?;
                let e = map.entry(argv[1].clone()).or_insert(Entry {
                    val: Val::Set(BTreeSet::new()),
                    expire_ms: None,
                });
                let Val::Set(s) = &mut e.val else {
                    return wrong();
                };
                s.extend(argv[2..].iter().cloned());
            }
            b"HSET" => {
                arity(4)?;
                if !argv.len().is_multiple_of(2) {
                    return Err("HSET arity".into());
                }
                let e = map.entry(argv[1].clone()).or_insert(Entry {
                    val: Val::Hash(BTreeMap::new()),
                    expire_ms: None,
                });
                let Val::Hash(h) = &mut e.val else {
                    return wrong();
                };
                for fv in argv[2..].chunks(2) {
                    h.insert(fv[0].clone(), fv[1].clone());
                }
            }
            b"PEXPIREAT" => {
                arity(3)?;
                let Some(ms) = int(&argv[2]) else {
                    return Err("not an integer".into());
                };
                if let Some(e) = map.get_mut(&argv[1]) {
                    e.expire_ms = Some(ms);
                }
            }
            _ => {
                return Err(format!(
                    "unknown command {}",
                    String::from_utf8_lossy(&name)
                ))
            }
        }
        Ok(())
    }

    /// Keys whose expiry passed (what the master's active expire cycle deletes).
    pub fn expired(&self, now_ms: i64) -> Vec<(u32, Bytes)> {
        let mut out = Vec::new();
        for (db, map) in self.dbs.iter().enumerate() {
            for (k, e) in map {
                if e.expire_ms.is_some_and(|t| t <= now_ms) {
                    out.push((db as u32, k.clone()));
                }
            }
        }
        out
    }

    pub fn contains(&self, db: u32, key: &[u8]) -> Option<&Entry> {
        self.dbs.get(db as usize)?.get(key)
    }

    /// The store as an RDB file, with the replication aux fields when given.
    pub fn to_rdb(&self, repl: Option<ReplInfo>) -> Bytes {
        let mut config = WriterConfig::default();
        config.aux.repl = repl;
        let mut w = Writer::new(config).expect("valid writer config");
        for (db, map) in self.dbs.iter().enumerate() {
            if map.is_empty() {
                continue;
            }
            let expires = map.values().filter(|e| e.expire_ms.is_some()).count();
            w.select_db(db as u64, map.len() as u64, expires as u64)
                .expect("select_db");
            for (k, e) in map {
                let value = match &e.val {
                    Val::Str(s) => Value::String(s.clone()),
                    Val::List(l) => Value::List(l.clone()),
                    Val::Set(s) => Value::Set(s.iter().cloned().collect()),
                    Val::Hash(h) => Value::Hash(
                        h.iter()
                            .map(|(f, v)| HashEntry {
                                field: f.clone(),
                                value: v.clone(),
                                expire_ms: None,
                            })
                            .collect(),
                    ),
                };
                let opts = KeyOptions {
                    expire_ms: e.expire_ms,
                    ..KeyOptions::default()
                };
                w.key(k, &value, opts).expect("key");
            }
        }
        w.finish().expect("finish")
    }
}

/// Loads an RDB pushed in pieces into a fresh [`Store`].
pub struct Loader {
    parser: Parser,
    collector: Collector,
    store: Store,
    pub aux: BTreeMap<Bytes, Bytes>,
}

impl Loader {
    pub fn new() -> Loader {
        Loader {
            parser: Parser::new(ParserConfig::default()),
            collector: Collector::new(1 << 24),
            store: Store::default(),
            aux: BTreeMap::new(),
        }
    }

    pub fn push(&mut self, data: Bytes) -> Result<(), String> {
        self.parser.push_bytes(data);
        self.drain()
    }

    fn drain(&mut self) -> Result<(), String> {
        loop {
            let ev = self.parser.poll_event().map_err(|e| e.to_string())?;
            let Some(ev) = ev else { return Ok(()) };
            if let RdbEvent::Aux { name, value } = &ev {
                self.aux.insert(name.clone(), value.clone());
                continue;
            }
            let Some((info, value)) = self.collector.handle_event(ev).map_err(|e| e.to_string())?
            else {
                continue;
            };
            let val = match value {
                Value::String(s) => Val::Str(s),
                Value::List(l) => Val::List(l),
                Value::Set(s) => Val::Set(s.into_iter().collect()),
                Value::Hash(h) => Val::Hash(h.into_iter().map(|e| (e.field, e.value)).collect()),
                other => return Err(format!("unexpected value type {other:?}")),
            };
            let Some(map) = self.store.dbs.get_mut(info.db as usize) else {
                return Err(format!("db {} out of range", info.db));
            };
            map.insert(
                info.key.clone(),
                Entry {
                    val,
                    expire_ms: info.expire.map(|e| e.as_millis()),
                },
            );
        }
    }

    pub fn finish(mut self) -> Result<(Store, BTreeMap<Bytes, Bytes>), String> {
        self.parser.finish();
        self.drain()?;
        if !self.parser.is_done() {
            return Err("snapshot ended early".into());
        }
        Ok((self.store, self.aux))
    }
}

/// Loads a whole RDB file.
pub fn load(file: &Bytes) -> Result<(Store, BTreeMap<Bytes, Bytes>), String> {
    let mut l = Loader::new();
    l.push(file.clone())?;
    l.finish()
}
