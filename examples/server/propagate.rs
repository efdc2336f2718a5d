//! What a write looks like in the replication stream: the command as executed, rewritten where
//! replaying it later would give another result, the way a Redis 7 master rewrites it.
//!
//! - Relative and absolute expiries become `PEXPIREAT <ms>` (`EXPIRE`, `PEXPIRE`, `EXPIREAT`)
//!   or `SET ... PXAT <ms>` (`SET EX/PX/EXAT`, `SETEX`, `PSETEX`), so a replica that applies
//!   the command a moment later sets the same deadline. An expiry that deleted the key
//!   propagates as `DEL`.
//! - `XADD` with a generated id (`*`, `ms-*`) propagates the id it generated, and approximate
//!   trimming (`~`, `LIMIT`) becomes exact trimming, which is what this server does.
//!
//! - The hash-field TTL commands decide their stream form while they run (it depends on what
//!   each field did), with the helpers below, as Redis 8.2 rewrites them (`t_hash.c`): every
//!   field they delete (expired, or given a time already past) goes out as its own
//!   `HDEL key field` first; `HEXPIRE`/`HPEXPIRE`/`HEXPIREAT` become `HPEXPIREAT <ms>` with only
//!   the fields whose TTL was set (none set: nothing); `HSETEX EX/PX/EXAT` becomes
//!   `HSETEX ... PXAT <ms>` (and nothing when its time is already past: the `HDEL`s say it
//!   all); `HGETEX EX/PX/EXAT/PXAT` becomes `HPEXPIREAT <ms> FIELDS ...`, `HGETEX PERSIST`
//!   becomes `HPERSIST FIELDS ...`, `HGETDEL` becomes `HDEL key field...`. Several commands
//!   from one client command go out inside `MULTI`/`EXEC` ([`send`]), as Redis wraps them.
//!
//! Every other write is propagated exactly as the client sent it: given the same data, it
//! does the same thing on the replica.

use bytes::Bytes;

use crate::app::commands::parse_i64;
use crate::app::master;
use crate::app::server::Server;
use crate::app::store::{Db, Value};

fn word(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn copy(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}

fn num(n: i64) -> Bytes {
    Bytes::from(n.to_string())
}

/// `argv` as it must appear in the stream, given the database after the command ran and the
/// time it ran at (`now`, Unix ms).
pub fn rewrite(db: &Db, argv: &[Bytes], now: i64) -> Vec<Bytes> {
    let name = argv[0].to_ascii_lowercase();
    match name.as_slice() {
        b"expire" | b"pexpire" | b"expireat" | b"pexpireat" if argv.len() >= 3 => {
            let Some(v) = parse_i64(&argv[2]) else {
                return argv.to_vec();
            };
            let at = match name.as_slice() {
                b"expire" => now.saturating_add(v.saturating_mul(1000)),
                b"pexpire" => now.saturating_add(v),
                b"expireat" => v.saturating_mul(1000),
                _ => v,
            };
            if db.raw(&argv[1]).is_none() {
                return vec![word("DEL"), argv[1].clone()];
            }
            let mut out = vec![word("PEXPIREAT"), argv[1].clone(), num(at)];
            out.extend(argv[3..].iter().cloned());
            out
        }
        b"setex" | b"psetex" if argv.len() == 4 => {
            let Some(v) = parse_i64(&argv[2]) else {
                return argv.to_vec();
            };
            let at = if name.as_slice() == b"setex" {
                now.saturating_add(v.saturating_mul(1000))
            } else {
                now.saturating_add(v)
            };
            vec![
                word("SET"),
                argv[1].clone(),
                argv[3].clone(),
                word("PXAT"),
                num(at),
            ]
        }
        b"set" if argv.len() > 3 => {
            let mut out: Vec<Bytes> = argv[..3].to_vec();
            let mut i = 3;
            while i < argv.len() {
                let o = argv[i].to_ascii_lowercase();
                let rel = match o.as_slice() {
                    b"ex" => Some(1000),
                    b"px" => Some(1),
                    b"exat" | b"pxat" => None,
                    _ => {
                        out.push(argv[i].clone());
                        i += 1;
                        continue;
                    }
                };
                let Some(v) = argv.get(i + 1).and_then(|v| parse_i64(v)) else {
                    return argv.to_vec();
                };
                let at = match (rel, o.as_slice()) {
                    (Some(m), _) => now.saturating_add(v.saturating_mul(m)),
                    (None, b"exat") => v.saturating_mul(1000),
                    _ => v,
                };
                out.push(word("PXAT"));
                out.push(num(at));
                i += 2;
            }
            out
        }
        b"xadd" => rewrite_xadd(db, argv),
        _ => argv.to_vec(),
    }
}

fn rewrite_xadd(db: &Db, argv: &[Bytes]) -> Vec<Bytes> {
    let mut out = vec![argv[0].clone(), argv[1].clone()];
    let mut i = 2;
    while i < argv.len() {
        let a = &argv[i];
        if a.eq_ignore_ascii_case(b"nomkstream") {
            out.push(a.clone());
            i += 1;
        } else if a.eq_ignore_ascii_case(b"maxlen") || a.eq_ignore_ascii_case(b"minid") {
            out.push(a.clone());
            i += 1;
            if argv
                .get(i)
                .is_some_and(|x| &x[..] == b"=" || &x[..] == b"~")
            {
                i += 1;
            }
            out.push(word("="));
            if let Some(v) = argv.get(i) {
                out.push(v.clone());
            }
            i += 1;
            if argv
                .get(i)
                .is_some_and(|x| x.eq_ignore_ascii_case(b"limit"))
            {
                i += 2; // exact trimming takes no LIMIT
            }
        } else {
            break;
        }
    }
    let Some(id) = argv.get(i) else {
        return argv.to_vec();
    };
    if id.ends_with(b"*") {
        match db.raw(&argv[1]).map(|e| &e.value) {
            Some(Value::Stream(s)) => out.push(Bytes::from(s.last_id.to_bytes())),
            _ => return argv.to_vec(),
        }
    } else {
        out.push(id.clone());
    }
    out.extend(argv[i + 1..].iter().cloned());
    out
}

/// `HDEL key field`: how a deleted hash field reaches the replicas.
pub fn hdel(key: &[u8], field: &[u8]) -> Vec<Bytes> {
    vec![
        word("HDEL"),
        Bytes::copy_from_slice(key),
        Bytes::copy_from_slice(field),
    ]
}

/// `HPEXPIREAT key <at> [cond] FIELDS <n> field...` for an `H(P)EXPIRE(AT)` command `argv`
/// whose `numfields` argument is at `numfields_at`, keeping only the fields in `set`. An
/// `HPEXPIREAT` keeps its name and time as sent.
pub fn hexpire(argv: &[&[u8]], numfields_at: usize, at: i64, set: &[&[u8]]) -> Vec<Bytes> {
    let already = argv[0].eq_ignore_ascii_case(b"hpexpireat");
    let mut out = Vec::with_capacity(numfields_at + 1 + set.len());
    out.push(if already {
        copy(argv[0])
    } else {
        word("HPEXPIREAT")
    });
    out.push(copy(argv[1]));
    out.push(if already { copy(argv[2]) } else { num(at) });
    out.extend(argv[3..numfields_at].iter().map(|a| copy(a)));
    if set.len() == argv.len() - numfields_at - 1 {
        out.push(copy(argv[numfields_at]));
    } else {
        out.push(num(set.len() as i64));
    }
    out.extend(set.iter().map(|a| copy(a)));
    out
}

/// `HSETEX` with its `EX`/`PX`/`EXAT` option (at `option_at`) replaced by `PXAT <at>`.
pub fn hsetex(argv: &[&[u8]], option_at: usize, at: i64) -> Vec<Bytes> {
    let mut out: Vec<Bytes> = argv.iter().map(|a| copy(a)).collect();
    if !argv[option_at].eq_ignore_ascii_case(b"pxat") {
        out[option_at] = word("PXAT");
        out[option_at + 1] = num(at);
    }
    out
}

/// `HGETEX key <option> [time] FIELDS n field...` as it reaches the replicas when it changed
/// TTLs: `HPERSIST key FIELDS ...` for `PERSIST`, else `HPEXPIREAT key <at> FIELDS ...` (the
/// time as sent for `PXAT`). `fields_at` is the index of the `FIELDS` token.
pub fn hgetex(argv: &[&[u8]], fields_at: usize, at: Option<i64>) -> Vec<Bytes> {
    let mut out = Vec::with_capacity(argv.len());
    match at {
        None => out.extend([word("HPERSIST"), copy(argv[1])]),
        Some(at) => {
            let time = if argv[2].eq_ignore_ascii_case(b"pxat") {
                copy(argv[3])
            } else {
                num(at)
            };
            out.extend([word("HPEXPIREAT"), copy(argv[1]), time]);
        }
    }
    out.extend(argv[fields_at..].iter().map(|a| copy(a)));
    out
}

/// `HGETDEL key FIELDS n field...` as `HDEL key field...`.
pub fn hgetdel(argv: &[&[u8]]) -> Vec<Bytes> {
    let mut out = vec![word("HDEL"), copy(argv[1])];
    out.extend(argv[4..].iter().map(|a| copy(a)));
    out
}

/// Sends what one command propagates: nothing, one command as is, or several inside
/// `MULTI`/`EXEC` (inside a transaction, they join it).
pub fn send(srv: &mut Server, db: usize, cmds: Vec<Vec<Bytes>>) {
    if cmds.len() <= 1 || srv.tx_propagate.is_some() {
        for c in &cmds {
            master::propagate(srv, db, c);
        }
        return;
    }
    if srv.is_replica() {
        return;
    }
    let writes: Vec<(u32, Vec<Bytes>)> = cmds.into_iter().map(|c| (db as u32, c)).collect();
    srv.node.propagate_transaction(&writes);
    srv.repl_dirty = true;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(a: &[Bytes]) -> Vec<&[u8]> {
        a.iter().map(|w| &w[..]).collect()
    }

    fn argv(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|w| Bytes::from(w.to_owned())).collect()
    }

    fn text(v: &[Bytes]) -> String {
        v.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn expiries_become_absolute() {
        let mut db = Db::default();
        db.set(b"k", Value::Str((*b"v").into()), None);
        assert_eq!(
            text(&rewrite(&db, &argv("EXPIRE k 10"), 1000)),
            "PEXPIREAT k 11000"
        );
        assert_eq!(
            text(&rewrite(&db, &argv("pexpire k 10 NX"), 1000)),
            "PEXPIREAT k 1010 NX"
        );
        assert_eq!(
            text(&rewrite(&db, &argv("EXPIREAT k 5"), 1000)),
            "PEXPIREAT k 5000"
        );
        assert_eq!(
            text(&rewrite(&db, &argv("EXPIRE gone 10"), 1000)),
            "DEL gone"
        );
        assert_eq!(
            text(&rewrite(&db, &argv("SETEX k 2 v"), 1000)),
            "SET k v PXAT 3000"
        );
        assert_eq!(
            text(&rewrite(&db, &argv("PSETEX k 2 v"), 1000)),
            "SET k v PXAT 1002"
        );
        assert_eq!(
            text(&rewrite(&db, &argv("SET k v NX EX 3 GET"), 1000)),
            "SET k v NX PXAT 4000 GET"
        );
        assert_eq!(
            text(&rewrite(&db, &argv("SET k v EXAT 7"), 1000)),
            "SET k v PXAT 7000"
        );
        assert_eq!(
            text(&rewrite(&db, &argv("SET k v KEEPTTL"), 1000)),
            "SET k v KEEPTTL"
        );
        assert_eq!(text(&rewrite(&db, &argv("DEL k"), 1000)), "DEL k");
    }

    #[test]
    fn hash_field_ttl_forms() {
        let a = argv("hpexpireat h 0099 NX FIELDS 3 a b c");
        let set: [&[u8]; 2] = [b"a", b"c"];
        assert_eq!(
            text(&hexpire(&words(&a), 5, 99, &set)),
            "hpexpireat h 0099 NX FIELDS 2 a c"
        );
        let a = argv("HEXPIRE h 10 FIELDS 1 a");
        assert_eq!(
            text(&hexpire(&words(&a), 4, 11000, &set[..1])),
            "HPEXPIREAT h 11000 FIELDS 1 a"
        );
        let a = argv("HSETEX h FNX EXAT 5 FIELDS 1 f v");
        assert_eq!(
            text(&hsetex(&words(&a), 3, 5000)),
            "HSETEX h FNX PXAT 5000 FIELDS 1 f v"
        );
        let a = argv("HGETEX h PXAT 007 FIELDS 1 f");
        assert_eq!(
            text(&hgetex(&words(&a), 4, Some(7))),
            "HPEXPIREAT h 007 FIELDS 1 f"
        );
        let a = argv("HGETEX h PERSIST FIELDS 1 f");
        assert_eq!(text(&hgetex(&words(&a), 3, None)), "HPERSIST h FIELDS 1 f");
        let a = argv("HGETDEL h FIELDS 2 f g");
        assert_eq!(text(&hgetdel(&words(&a))), "HDEL h f g");
    }

    #[test]
    fn xadd_propagates_its_id_and_exact_trimming() {
        let mut db = Db::default();
        let s = crate::app::store::Stream {
            last_id: crate::app::store::StreamId { ms: 5, seq: 2 },
            ..Default::default()
        };
        db.set(b"s", Value::Stream(Box::new(s)), None);
        assert_eq!(
            text(&rewrite(&db, &argv("XADD s MAXLEN ~ 10 LIMIT 5 * f v"), 0)),
            "XADD s MAXLEN = 10 5-2 f v"
        );
        assert_eq!(
            text(&rewrite(&db, &argv("XADD s 9-1 f v"), 0)),
            "XADD s 9-1 f v"
        );
    }
}
