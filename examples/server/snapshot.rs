//! Writing the keyspace as an RDB file with the crate's [`rdb::Writer`], from a point-in-time
//! view taken under the server lock ([`Store::snapshot`]) and written on another thread while
//! clients keep writing.
//!
//! How the view stays consistent without copying the data: each database keeps its keys in
//! 256 shards behind `Arc`s. Taking a snapshot clones the 256 `Arc`s of every database (a few
//! microseconds, under the lock, at the exact replication offset the node fixed). A client
//! write to a shard the snapshot still holds copies that one shard first (`Arc::make_mut`), the
//! way a forked Redis child shares memory pages with its parent; the writer drops each shard as
//! soon as it is saved, so later writes to it copy nothing.
//!
//! Hash field TTLs are written at RDB 12 (types 24/25). Below 12 a dataset that has any is
//! refused, never written without them (see `refuse_field_ttls`).
//!
//! [`Store::snapshot`]: crate::app::store::Store::snapshot

use std::collections::VecDeque;

use bytes::Bytes;
use respsync::rdb::{
    self, AuxFields, HashEntry, KeyOptions, ReplInfo, StreamConsumer, StreamConsumerInfo,
    StreamEntry, StreamGroup, StreamGroupInfo, StreamId, StreamMeta, WriteError, Writer,
    WriterConfig,
};

use respsync::rdb::encoding::object::EncodeError;

use crate::app::store::{self, DbSnapshot, Value};

/// The RDB version snapshots are written in unless configured: 9, the newest every replica in
/// the interop matrix loads (Redis 6.2 loads at most 9, 7.0 at most 10, 7.2+ and Valkey 8 all
/// of them).
pub const DEFAULT_RDB_VERSION: u8 = 9;

/// What to write.
pub struct Spec {
    pub version: u8,
    /// `repl-stream-db`, `repl-id`, `repl-offset` aux fields.
    pub repl: Option<ReplInfo>,
    /// Include keys (false for `REPLCONF rdb-filter-only` without data).
    pub data: bool,
}

/// What was written.
#[derive(Debug, Default)]
pub struct Written {
    pub keys: u64,
    pub bytes: u64,
    /// Keys whose value the target version could not hold exactly (stream metadata below
    /// RDB 10): written in the documented nearest form and counted here.
    pub lossy: u64,
    /// Values this server keeps only as an opaque payload of a type the writer cannot
    /// reproduce (module values): not written, and counted here.
    pub skipped: u64,
}

/// Bytes written through the sink at a time.
const CHUNK: usize = 256 * 1024;

/// Writes `dbs` as one RDB file, handing it to `sink` in chunks of about 256 KiB. A sink error
/// stops the write.
pub fn write<E: From<WriteError>>(
    dbs: Vec<DbSnapshot>,
    spec: &Spec,
    mut sink: impl FnMut(Bytes) -> Result<(), E>,
) -> Result<Written, E> {
    let config = WriterConfig {
        version: spec.version,
        aux: AuxFields {
            ctime: store::now_ms() / 1000,
            repl: spec.repl.clone(),
            ..AuxFields::default()
        },
        allow_lossy: true,
        ..WriterConfig::default()
    };
    let mut w = Writer::new(config)?;
    if spec.data && spec.version < FIELD_TTL_RDB_VERSION {
        refuse_field_ttls(&dbs, spec.version)?;
    }
    let mut done = Written::default();
    for (i, db) in dbs.into_iter().enumerate() {
        if !spec.data || db.len() == 0 {
            continue;
        }
        w.select_db(i as u64, db.len() as u64, db.expires_len() as u64)?;
        for shard in db.into_shards() {
            for (key, entry) in shard.iter() {
                let options = KeyOptions {
                    expire_ms: entry.expire,
                    ..KeyOptions::default()
                };
                match &entry.value {
                    Value::Str(s) => w.string(key, s, options)?,
                    other => match to_rdb(other) {
                        Some(v) => {
                            if w.would_lose(&v).is_some() {
                                done.lossy += 1;
                            }
                            w.key(key, &v, options)?;
                        }
                        None => {
                            done.skipped += 1;
                            continue;
                        }
                    },
                }
                done.keys += 1;
                if w.buffered() >= CHUNK {
                    if let Some(c) = w.poll_chunk() {
                        done.bytes += c.len() as u64;
                        sink(c)?;
                    }
                }
            }
            // `shard` drops here: writes to it stop copying.
        }
    }
    while let Some(c) = w.poll_chunk() {
        done.bytes += c.len() as u64;
        sink(c)?;
    }
    let tail = w.finish()?;
    done.bytes += tail.len() as u64;
    sink(tail)?;
    if done.lossy > 0 || done.skipped > 0 {
        crate::log!(
            "snapshot: RDB {}: {} key(s) written in a nearest form, {} opaque value(s) not written",
            spec.version,
            done.lossy,
            done.skipped
        );
    }
    Ok(done)
}

/// The first RDB version that stores hash field TTLs (Redis 7.4+).
pub const FIELD_TTL_RDB_VERSION: u8 = 12;

/// Refuses a snapshot in an RDB version older than 12 when some hash has field TTLs: that
/// version cannot hold them, and writing the fields without their TTLs would leave a replica
/// with fields that never expire (if it is ever promoted) and `HTTL` answers that differ, so
/// nothing is written and the refusal is logged with the number of such hashes. A replica that
/// loads RDB 12 (Redis 7.4+) is served once `repl-rdb-version 12` is set.
fn refuse_field_ttls(dbs: &[DbSnapshot], version: u8) -> Result<(), WriteError> {
    let n: usize = dbs.iter().map(DbSnapshot::field_ttl_hashes).sum();
    if n == 0 {
        return Ok(());
    }
    let first = dbs
        .iter()
        .flat_map(|db| db.shards())
        .flat_map(|shard| shard.iter())
        .find(|(_, e)| matches!(&e.value, Value::Hash(h) if h.ttl_count() > 0))
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default();
    crate::log!(
        "# WARNING snapshot refused: {n} hash key(s) (the first: '{first}') have field TTLs, \
         which RDB {version} cannot store; set repl-rdb-version {FIELD_TTL_RDB_VERSION} \
         to serve replicas that load it (Redis 7.4+)"
    );
    Err(WriteError::Encode {
        key: first,
        source: EncodeError::FieldExpiryUnsupported(version),
    })
}

fn b(x: &[u8]) -> Bytes {
    Bytes::copy_from_slice(x)
}

fn sid(i: store::StreamId) -> StreamId {
    StreamId {
        ms: i.ms,
        seq: i.seq,
    }
}

/// This server's value as the crate's RDB value (`None` for opaque values it cannot rebuild).
pub fn to_rdb(v: &Value) -> Option<rdb::Value> {
    Some(match v {
        Value::Str(s) => rdb::Value::String(b(s)),
        Value::List(l) => rdb::Value::List(l.iter().map(|e| b(e)).collect()),
        Value::Set(s) => rdb::Value::Set(s.iter().map(|e| b(e)).collect()),
        Value::Hash(h) => rdb::Value::Hash(
            h.iter()
                .map(|(f, v, expire_ms)| HashEntry {
                    field: b(f),
                    value: b(v),
                    expire_ms,
                })
                .collect(),
        ),
        Value::ZSet(z) => rdb::Value::Zset(z.order.iter().map(|(s, m)| (b(m), s.0)).collect()),
        Value::Stream(s) => {
            let mut meta = StreamMeta::new(s.entries.len() as u64, sid(s.last_id));
            meta.first_id = Some(sid(s.first_id));
            meta.max_deleted_id = Some(sid(s.max_deleted_id));
            meta.entries_added = Some(s.entries_added);
            meta.groups = s.groups.len() as u64;
            let entries = s
                .entries
                .iter()
                .map(|(id, fields)| StreamEntry {
                    id: sid(*id),
                    fields: fields.iter().map(|(f, v)| (b(f), b(v))).collect(),
                })
                .collect();
            let groups = s
                .groups
                .iter()
                .map(|g| {
                    let mut info = StreamGroupInfo::new(
                        b(&g.name),
                        sid(g.last_id),
                        u64::try_from(g.entries_read).ok(),
                    );
                    info.pending = g.pending.len() as u64;
                    StreamGroup {
                        info,
                        pending: g
                            .pending
                            .iter()
                            .map(|(id, p)| rdb::PendingEntry {
                                id: sid(*id),
                                delivery_time_ms: p.delivery_time,
                                delivery_count: p.delivery_count,
                            })
                            .collect(),
                        consumers: g
                            .consumers
                            .iter()
                            .map(|c| {
                                let mut info = StreamConsumerInfo::new(b(&c.name), c.seen_time);
                                info.pending = c.pending.len() as u64;
                                StreamConsumer {
                                    info,
                                    pending: c.pending.iter().map(|id| sid(*id)).collect(),
                                }
                            })
                            .collect(),
                    }
                })
                .collect();
            rdb::Value::Stream(Box::new(rdb::Stream {
                entries,
                meta,
                groups,
            }))
        }
        Value::Opaque(o) => {
            // Values of types this server cannot serve were kept as DUMP payloads.
            let dump =
                rdb::parse_dump_payload(&o.dump, &rdb::ParserConfig::default(), u64::MAX).ok()?;
            dump.value
        }
    })
}

/// Chunks of a snapshot in memory (for `SAVE` tests and small datasets).
#[allow(dead_code)]
pub fn to_vec(dbs: Vec<DbSnapshot>, spec: &Spec) -> Result<Vec<u8>, WriteError> {
    let mut out = VecDeque::new();
    write::<WriteError>(dbs, spec, |c| {
        out.push_back(c);
        Ok(())
    })?;
    Ok(out.into_iter().flat_map(|c| c.to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::store::{Hash, Store};

    fn store_with_ttls() -> Store {
        let mut store = Store::new(16);
        let mut h = Hash::default();
        h.insert_with_expire((*b"a").into(), (*b"1").into(), Some(70_000_000_000_000));
        h.insert_with_expire((*b"b").into(), (*b"2").into(), None);
        store.dbs[3].set(b"h", Value::Hash(Box::new(h)), None);
        store
    }

    fn spec(version: u8) -> Spec {
        Spec {
            version,
            repl: None,
            data: true,
        }
    }

    #[test]
    fn field_ttls_below_rdb_12_refuse_the_snapshot() {
        let store = store_with_ttls();
        for v in [9, 10, 11] {
            match to_vec(store.snapshot(), &spec(v)) {
                Err(WriteError::Encode { key, source }) => {
                    assert_eq!(key, "h");
                    assert!(matches!(source, EncodeError::FieldExpiryUnsupported(x) if x == v));
                }
                other => panic!("RDB {v}: expected a refusal, got {other:?}"),
            }
        }
        // Without data (rdb-filter-only), nothing to refuse.
        let empty = Spec {
            data: false,
            ..spec(9)
        };
        assert!(to_vec(store.snapshot(), &empty).is_ok());
    }

    #[test]
    fn field_ttls_round_trip_through_rdb_12() {
        let store = store_with_ttls();
        let bytes = to_vec(store.snapshot(), &spec(12)).unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("respsync-hfe-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("dump.rdb");
        std::fs::write(&path, &bytes).ok();
        let loaded = crate::app::loader::load_file(&path, 16);
        let _ = std::fs::remove_dir_all(&dir);
        let loaded = loaded
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        match loaded.store.dbs[3].raw(b"h").map(|e| &e.value) {
            Some(Value::Hash(h)) => {
                assert_eq!(h.expire_of(b"a"), Some(70_000_000_000_000));
                assert_eq!((h.expire_of(b"b"), h.len()), (None, 2));
            }
            other => panic!("loaded {other:?}"),
        }
        assert_eq!(loaded.store.dbs[3].snapshot().field_ttl_hashes(), 1);
    }
}
