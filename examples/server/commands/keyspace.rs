//! Commands on keys of any type, as Redis's `db.c` and `expire.c`: DBSIZE, FLUSHDB, FLUSHALL,
//! KEYS, SCAN, TYPE, DEL/UNLINK, EXISTS, the EXPIRE family, TTL/PTTL and PERSIST.

use crate::app::store::{self, Entry, Value};

use super::{eq, int, lossy, Ctx, Res, SYNTAX};

pub(super) fn dbsize(ctx: &mut Ctx, _: &[&[u8]]) -> Res {
    let n = ctx.db().len();
    ctx.out.int(n as i64);
    Ok(())
}

fn flush_mode(a: &[&[u8]]) -> Res {
    match a.get(1) {
        None => Ok(()),
        Some(m) if a.len() == 2 && (eq(m, "async") || eq(m, "sync")) => Ok(()),
        Some(_) => Err(SYNTAX.into()),
    }
}

pub(super) fn flushdb(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    flush_mode(a)?;
    ctx.db().clear();
    ctx.out.ok();
    Ok(())
}

pub(super) fn flushall(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    flush_mode(a)?;
    ctx.srv.store.flush_all();
    ctx.out.ok();
    Ok(())
}

/// Glob-style matching as Redis's `stringmatchlen` (`*`, `?`, `[...]` with `^` and ranges, `\`).
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    fn m(p: &[u8], s: &[u8], depth: u32) -> bool {
        if depth > 1000 {
            return false;
        }
        let (mut pi, mut si) = (0, 0);
        while pi < p.len() {
            match p[pi] {
                b'*' => {
                    while pi + 1 < p.len() && p[pi + 1] == b'*' {
                        pi += 1;
                    }
                    if pi + 1 == p.len() {
                        return true;
                    }
                    return (si..=s.len()).any(|k| m(&p[pi + 1..], &s[k..], depth + 1));
                }
                b'?' => {
                    if si >= s.len() {
                        return false;
                    }
                    si += 1;
                }
                b'[' => {
                    if si >= s.len() {
                        return false;
                    }
                    pi += 1;
                    let not = p.get(pi) == Some(&b'^');
                    if not {
                        pi += 1;
                    }
                    let mut matched = false;
                    while pi < p.len() && p[pi] != b']' {
                        if p[pi] == b'\\' && pi + 1 < p.len() {
                            pi += 1;
                            matched |= p[pi] == s[si];
                        } else if pi + 2 < p.len() && p[pi + 1] == b'-' {
                            let (lo, hi) = (p[pi].min(p[pi + 2]), p[pi].max(p[pi + 2]));
                            matched |= (lo..=hi).contains(&s[si]);
                            pi += 2;
                        } else {
                            matched |= p[pi] == s[si];
                        }
                        pi += 1;
                    }
                    if matched == not {
                        return false;
                    }
                    si += 1;
                }
                c => {
                    let c = if c == b'\\' && pi + 1 < p.len() {
                        pi += 1;
                        p[pi]
                    } else {
                        c
                    };
                    if si >= s.len() || s[si] != c {
                        return false;
                    }
                    si += 1;
                }
            }
            pi += 1;
        }
        si == s.len()
    }
    m(p, s, 0)
}

pub(super) fn keys(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let now = ctx.now;
    let hide_expired = !ctx.cl.is_master;
    let db = &ctx.srv.store.dbs[ctx.cl.db];
    let all = a[1] == b"*";
    let found: Vec<&[u8]> = db
        .iter()
        .filter(|(k, e)| (all || glob(a[1], k)) && !(hide_expired && store::is_expired(e, now)))
        .map(|(k, _)| k)
        .collect();
    ctx.out.array(found.len());
    for k in found {
        ctx.out.bulk(k);
    }
    Ok(())
}

/// A stable 64-bit position for SCAN: keys are visited in order of this hash, and the cursor is
/// the last hash returned, so a key present for the whole scan is returned exactly once.
fn scan_hash(k: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(k);
    h.finish() | 1
}

pub(super) fn scan(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let cursor = std::str::from_utf8(a[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("ERR invalid cursor")?;
    let (mut count, mut pattern, mut kind) = (10usize, None, None);
    let mut i = 2;
    while i < a.len() {
        if i + 1 >= a.len() {
            return Err(SYNTAX.into());
        }
        if eq(a[i], "count") {
            let n = int(a[i + 1])?;
            if n < 1 {
                return Err(SYNTAX.into());
            }
            count = n.min(1 << 20) as usize;
        } else if eq(a[i], "match") {
            pattern = Some(a[i + 1]);
        } else if eq(a[i], "type") {
            kind = Some(String::from_utf8_lossy(a[i + 1]).to_ascii_lowercase());
        } else {
            return Err(SYNTAX.into());
        }
        i += 2;
    }
    let now = ctx.now;
    let db = &ctx.srv.store.dbs[ctx.cl.db];
    let mut batch: Vec<(u64, &[u8], &Entry)> = db
        .iter()
        .map(|(k, e)| (scan_hash(k), k, e))
        .filter(|(h, _, _)| *h > cursor)
        .collect();
    let next = if batch.len() > count {
        batch.select_nth_unstable_by_key(count - 1, |t| t.0);
        batch.truncate(count);
        batch.iter().map(|t| t.0).max().unwrap_or(0)
    } else {
        0
    };
    let found: Vec<&[u8]> = batch
        .into_iter()
        .filter(|(_, k, e)| {
            !store::is_expired(e, now)
                && pattern.as_ref().is_none_or(|p| glob(p, k))
                && kind.as_deref().is_none_or(|t| e.value.type_name() == t)
        })
        .map(|t| t.1)
        .collect();
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(found.len());
    for k in found {
        ctx.out.bulk(k);
    }
    Ok(())
}

pub(super) fn type_(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let t = match ctx.read(a[1]) {
        None => "none",
        Some(Entry {
            value: Value::Opaque(o),
            ..
        }) => {
            let name = o.type_name.clone();
            ctx.out.simple(&name);
            return Ok(());
        }
        Some(e) => e.value.type_name(),
    };
    ctx.out.simple(t);
    Ok(())
}

pub(super) fn del(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let mut n = 0;
    for k in &a[1..] {
        if ctx.exists(k) {
            ctx.db().remove(k);
            n += 1;
        } else if ctx.cl.is_master {
            ctx.db().remove(k);
        }
    }
    ctx.out.int(n);
    Ok(())
}

pub(super) fn exists(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let mut n = 0;
    for k in &a[1..] {
        if ctx.read(k).is_some() {
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

pub(super) fn expire(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let name = a[0].to_ascii_lowercase();
    let v = int(a[2])?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in &a[3..] {
        match o.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Err(format!("ERR Unsupported option {}", lossy(o)).into());
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    let when = match name.as_slice() {
        b"expire" => v.checked_mul(1000).and_then(|ms| ms.checked_add(ctx.now)),
        b"pexpire" => v.checked_add(ctx.now),
        b"expireat" => v.checked_mul(1000),
        _ => Some(v),
    }
    .ok_or_else(|| format!("ERR invalid expire time in '{}' command", lossy(&name)))?;
    let Some(e) = ctx.write(a[1]) else {
        ctx.out.int(0);
        return Ok(());
    };
    let cur = e.expire;
    let ok = match cur {
        None => !xx && !gt,
        Some(c) => !nx && (!gt || when > c) && (!lt || when < c),
    };
    if !ok {
        ctx.out.int(0);
        return Ok(());
    }
    if when <= ctx.now && !ctx.srv.is_replica() && !ctx.cl.is_master {
        ctx.db().remove(a[1]);
    } else {
        ctx.db().set_expire(a[1], Some(when));
    }
    ctx.out.int(1);
    Ok(())
}

pub(super) fn ttl(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let ms = a[0].eq_ignore_ascii_case(b"pttl");
    let now = ctx.now;
    let r = match ctx.read(a[1]) {
        None => -2,
        Some(Entry { expire: None, .. }) => -1,
        Some(Entry {
            expire: Some(t), ..
        }) => {
            let left = (t - now).max(0);
            if ms {
                left
            } else {
                (left + 500) / 1000
            }
        }
    };
    ctx.out.int(r);
    Ok(())
}

pub(super) fn persist(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let had = matches!(
        ctx.write(a[1]),
        Some(Entry {
            expire: Some(_),
            ..
        })
    );
    if had {
        ctx.db().set_expire(a[1], None);
    }
    ctx.out.int(had as i64);
    Ok(())
}
