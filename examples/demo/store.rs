//! The in-memory dataset both nodes keep (database 0 only), and the handful of write commands the
//! demo uses. Master and replica apply writes with the same function, so their datasets can be
//! compared key by key.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use respsync::rdb::{HashEntry, Value};
use respsync::resp;

/// One database: key → value, in the crate's own [`Value`] type (what the RDB writer takes and
/// the RDB collector gives back).
pub type Db = BTreeMap<Bytes, Value>;

/// The reply to a client command, encoded with the crate's RESP encoders.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok,
    Int(i64),
    Err(String),
}

impl Reply {
    /// Appends the RESP2 encoding of the reply.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Reply::Ok => resp::encode_ok(out),
            Reply::Int(i) => resp::encode_integer(*i, out),
            Reply::Err(e) => resp::encode_error(e.as_bytes(), out),
        }
    }
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Commands that modify the dataset. Redis flags these `write`; a read-only replica refuses
/// them from normal clients (protocol.md §8).
const WRITE_COMMANDS: &[&str] = &[
    "set", "del", "incr", "rpush", "lpush", "sadd", "hset", "zadd", "append", "expire", "flushdb",
    "flushall", "mset", "getset", "srem", "hdel", "zrem", "lpop", "rpop", "unlink",
];

/// Whether `name` is a write command.
pub fn is_write(name: &[u8]) -> bool {
    WRITE_COMMANDS
        .iter()
        .any(|c| c.as_bytes().eq_ignore_ascii_case(name))
}

fn arity_error(name: &[u8]) -> Reply {
    Reply::Err(format!(
        "ERR wrong number of arguments for '{}' command",
        String::from_utf8_lossy(name).to_lowercase()
    ))
}

/// Applies a write command to `db` (SET, DEL, INCR, RPUSH, SADD, HSET, ZADD) and returns the
/// reply Redis would give. Unknown commands change nothing.
pub fn apply(db: &mut Db, argv: &[Bytes]) -> Reply {
    let Some(name) = argv.first() else {
        return Reply::Err("ERR empty command".into());
    };
    let lower = name.to_ascii_lowercase();
    let args = &argv[1..];
    match lower.as_slice() {
        b"set" if args.len() == 2 => {
            db.insert(args[0].clone(), Value::String(args[1].clone()));
            Reply::Ok
        }
        b"del" if !args.is_empty() => {
            let n = args.iter().filter(|k| db.remove(*k).is_some()).count();
            Reply::Int(n as i64)
        }
        b"incr" if args.len() == 1 => {
            let cur = match db.get(&args[0]) {
                None => 0,
                Some(Value::String(s)) => match std::str::from_utf8(s)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                {
                    Some(n) => n,
                    None => {
                        return Reply::Err("ERR value is not an integer or out of range".into())
                    }
                },
                Some(_) => return Reply::Err(WRONGTYPE.into()),
            };
            let Some(next) = cur.checked_add(1) else {
                return Reply::Err("ERR increment or decrement would overflow".into());
            };
            db.insert(
                args[0].clone(),
                Value::String(Bytes::from(next.to_string())),
            );
            Reply::Int(next)
        }
        b"rpush" if args.len() >= 2 => {
            let entry = db
                .entry(args[0].clone())
                .or_insert_with(|| Value::List(Vec::new()));
            let Value::List(list) = entry else {
                return Reply::Err(WRONGTYPE.into());
            };
            list.extend(args[1..].iter().cloned());
            Reply::Int(list.len() as i64)
        }
        b"sadd" if args.len() >= 2 => {
            let entry = db
                .entry(args[0].clone())
                .or_insert_with(|| Value::Set(Vec::new()));
            let Value::Set(set) = entry else {
                return Reply::Err(WRONGTYPE.into());
            };
            let mut added = 0;
            for m in &args[1..] {
                if !set.contains(m) {
                    set.push(m.clone());
                    added += 1;
                }
            }
            Reply::Int(added)
        }
        b"hset" if args.len() >= 3 && args.len() % 2 == 1 => {
            let entry = db
                .entry(args[0].clone())
                .or_insert_with(|| Value::Hash(Vec::new()));
            let Value::Hash(hash) = entry else {
                return Reply::Err(WRONGTYPE.into());
            };
            let mut added = 0;
            for pair in args[1..].chunks(2) {
                match hash.iter_mut().find(|e| e.field == pair[0]) {
                    Some(e) => e.value = pair[1].clone(),
                    None => {
                        hash.push(HashEntry {
                            field: pair[0].clone(),
                            value: pair[1].clone(),
                            expire_ms: None,
                        });
                        added += 1;
                    }
                }
            }
            Reply::Int(added)
        }
        b"zadd" if args.len() >= 3 && args.len() % 2 == 1 => {
            let mut pairs = Vec::new();
            for pair in args[1..].chunks(2) {
                let score = std::str::from_utf8(&pair[0])
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok());
                match score {
                    Some(s) if !s.is_nan() => pairs.push((pair[1].clone(), s)),
                    _ => return Reply::Err("ERR value is not a valid float".into()),
                }
            }
            let entry = db
                .entry(args[0].clone())
                .or_insert_with(|| Value::Zset(Vec::new()));
            let Value::Zset(zset) = entry else {
                return Reply::Err(WRONGTYPE.into());
            };
            let mut added = 0;
            for (member, score) in pairs {
                match zset.iter_mut().find(|(m, _)| *m == member) {
                    Some(e) => e.1 = score,
                    None => {
                        zset.push((member, score));
                        added += 1;
                    }
                }
            }
            Reply::Int(added)
        }
        b"set" | b"del" | b"incr" | b"rpush" | b"sadd" | b"hset" | b"zadd" => arity_error(name),
        _ => Reply::Err(format!(
            "ERR unknown command '{}'",
            String::from_utf8_lossy(name)
        )),
    }
}

/// The value with its unordered parts sorted, so that two datasets holding the same data
/// compare equal whatever order the RDB encoding chose (an intset is sorted, a listpack keeps
/// insertion order).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Set(m) => {
            let mut m = m.clone();
            m.sort();
            Value::Set(m)
        }
        Value::Hash(h) => {
            let mut h = h.clone();
            h.sort_by(|a, b| a.field.cmp(&b.field));
            Value::Hash(h)
        }
        Value::Zset(z) => {
            let mut z = z.clone();
            z.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Zset(z)
        }
        other => other.clone(),
    }
}

/// Compares two datasets key by key; `Err` names the first difference.
pub fn compare(master: &Db, replica: &Db) -> Result<(), String> {
    for (k, v) in master {
        match replica.get(k) {
            None => return Err(format!("key {:?} missing on the replica", k)),
            Some(r) if canonical(r) != canonical(v) => {
                return Err(format!("key {k:?} differs: master {v:?}, replica {r:?}"))
            }
            Some(_) => {}
        }
    }
    if let Some(k) = replica.keys().find(|k| !master.contains_key(*k)) {
        return Err(format!("key {k:?} exists only on the replica"));
    }
    Ok(())
}

/// A value's type name as `TYPE` prints it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::List(_) => "list",
        Value::Set(_) => "set",
        Value::Zset(_) => "zset",
        Value::Hash(_) => "hash",
        Value::Stream(_) => "stream",
        Value::Module(_) => "module",
        // `Value` is non-exhaustive.
        _ => "other",
    }
}
