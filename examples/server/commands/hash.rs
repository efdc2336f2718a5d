//! Hash commands, as Redis 8.2's `t_hash.c`: HSET/HMSET, HSETNX, HGET, HEXISTS, HDEL, HGETALL,
//! HLEN, HINCRBY, and the hash-field TTL commands: HEXPIRE/HPEXPIRE/HEXPIREAT/HPEXPIREAT,
//! HPERSIST, HTTL/HPTTL/HEXPIRETIME/HPEXPIRETIME, HSETEX, HGETEX, HGETDEL.
//!
//! Field expiry follows Redis 8.2:
//! - a field is logically expired when its expiry is strictly before the command's time;
//! - on a master, a command that looks a field up (HGET, HEXISTS, HSETNX, HINCRBY, HSETEX
//!   FNX/FXX, HGETEX, HGETDEL) deletes it if expired and propagates `HDEL key field`; a hash
//!   left empty is deleted (the `HDEL`s empty it on the replicas too, so no `DEL` is sent);
//!   the cron deletes the others ([`crate::app::store::Db::expire_fields_due`]);
//! - on a replica, its clients do not see expired fields (HGET nil, HEXISTS 0, HGETALL skips
//!   them, HTTL -2) but nothing is deleted until the master's `HDEL` arrives; the master's
//!   stream sees every stored field, and a time already past sets a TTL in the past instead
//!   of deleting (Redis's `checkAlreadyExpired` is false on a replica);
//! - HLEN counts stored fields, expired ones included (Redis's `hashTypeLength(o, 0)`), and
//!   HSET, HDEL and H*EXPIRE* act on stored fields whether expired or not.
//!
//! One deliberate difference: on a replica, `HPERSIST` from the master persists a field even
//! if its TTL has passed there meanwhile (Redis would answer -2 and keep a TTL its master no
//! longer has, so the field would hide forever).

use std::borrow::Cow;

use bytes::Bytes;

use crate::app::propagate;
use crate::app::server::Server;
use crate::app::store::{Blob, Entry, Hash, Value};

use super::{eq, int, lossy, parse_i64, Ctx, Res};

/// Largest field expiry a command may set (Redis's `HFE_MAX_ABS_TIME_MSEC`, 2^46 - 1 ms).
const MAX_FIELD_EXPIRY: i64 = (1 << 46) - 1;

const FIELDS_MISSING: &str =
    "ERR Mandatory argument FIELDS is missing or not at the right position";
const NUMFIELDS_MISMATCH: &str = "ERR The `numfields` parameter must match the number of arguments";
const NUMFIELDS_POSITIVE: &str = "ERR Number of fields must be a positive integer";

fn arity_error(name: &[u8]) -> Cow<'static, str> {
    format!(
        "ERR wrong number of arguments for '{}' command",
        lossy(&name.to_ascii_lowercase())
    )
    .into()
}

/// How this caller sees an expired field.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    /// The master's stream on a replica: every stored field is alive.
    Stream,
    /// A client of a replica: hidden, kept.
    Hide,
    /// A client of a master: deleted (and the deletion propagated).
    Delete,
}

fn mode(ctx: &Ctx) -> Mode {
    if ctx.cl.is_master {
        Mode::Stream
    } else if ctx.srv.is_replica() {
        Mode::Hide
    } else {
        Mode::Delete
    }
}

/// The stored hash at `key` (key-level expiry and type already checked by the caller).
fn hash_mut<'a>(srv: &'a mut Server, db: usize, key: &[u8]) -> Option<&'a mut Hash> {
    match srv.store.dbs[db].get_mut(key, i64::MIN) {
        Some(Entry {
            value: Value::Hash(h),
            ..
        }) => Some(h),
        _ => None,
    }
}

/// The value of `field` if it is alive for this caller. An expired field is deleted in
/// [`Mode::Delete`], with its `HDEL` pushed to `hdels`.
fn live<'h>(
    h: &'h mut Hash,
    key: &[u8],
    field: &[u8],
    now: i64,
    mode: Mode,
    hdels: &mut Vec<Vec<Bytes>>,
) -> Option<&'h Blob> {
    if h.is_expired(field, now) && mode != Mode::Stream {
        if mode == Mode::Delete {
            h.remove(field);
            hdels.push(propagate::hdel(key, field));
        }
        return None;
    }
    h.get(field)
}

/// After a command changed the hash at `key`: deletes it if empty, and updates the field-expiry
/// index.
fn finish(ctx: &mut Ctx, key: &[u8]) {
    ctx.drop_if_empty(key);
    ctx.db().reindex_hash(key);
}

/// Sets what the command propagates (see [`Ctx::propagate`]).
fn propagate_as(ctx: &mut Ctx, cmds: Vec<Vec<Bytes>>) {
    ctx.propagate = Some(cmds);
}

/// Parses an expiry argument as Redis's `parseExpireTime`: an integer >= 0, in seconds or
/// milliseconds, plus `base` (now for relative times, 0 for absolute ones); the result must
/// not pass [`MAX_FIELD_EXPIRY`].
fn parse_expire(
    name: &[u8],
    arg: &[u8],
    seconds: bool,
    base: i64,
) -> Result<i64, Cow<'static, str>> {
    let v = int(arg)?;
    if v < 0 {
        return Err("ERR invalid expire time, must be >= 0".into());
    }
    let too_big = || -> Cow<'static, str> {
        format!(
            "ERR invalid expire time in '{}' command",
            lossy(&name.to_ascii_lowercase())
        )
        .into()
    };
    let v = if seconds {
        if v > MAX_FIELD_EXPIRY / 1000 {
            return Err(too_big());
        }
        v * 1000
    } else {
        v
    };
    if v > MAX_FIELD_EXPIRY - base {
        return Err(too_big());
    }
    Ok(v + base)
}

/// The fields of a `FIELDS numfields field...` block whose `FIELDS` token is at `at`.
fn fields_block<'a, 'b>(
    a: &'a [&'b [u8]],
    at: usize,
    positive: &'static str,
) -> Result<&'a [&'b [u8]], Cow<'static, str>> {
    if a.len() <= at + 1 {
        return Err(arity_error(a[0]));
    }
    if !eq(a[at], "fields") {
        return Err(FIELDS_MISSING.into());
    }
    let n = parse_i64(a[at + 1])
        .filter(|n| *n >= 1)
        .ok_or(Cow::Borrowed(positive))?;
    if usize::try_from(n).ok() != Some(a.len() - at - 2) {
        return Err(NUMFIELDS_MISMATCH.into());
    }
    Ok(&a[at + 2..])
}

pub(super) fn hset(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    if !a.len().is_multiple_of(2) {
        return Err(arity_error(a[0]));
    }
    let h = write_or_create!(ctx, &a[1], Hash, Box::default());
    let n = a[2..]
        .chunks_exact(2)
        .filter(|kv| h.insert(kv[0], kv[1][..].into()))
        .count();
    finish(ctx, a[1]);
    if a[0].eq_ignore_ascii_case(b"hmset") {
        ctx.out.ok();
    } else {
        ctx.out.int(n as i64);
    }
    Ok(())
}

pub(super) fn hsetnx(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let (now, mode, db) = (ctx.now, mode(ctx), ctx.cl.db);
    write_or_create!(ctx, &a[1], Hash, Box::default());
    let mut hdels = Vec::new();
    let Some(h) = hash_mut(ctx.srv, db, a[1]) else {
        return Ok(());
    };
    let new = live(h, a[1], a[2], now, mode, &mut hdels).is_none();
    if new {
        h.insert(a[2], a[3][..].into());
    }
    finish(ctx, a[1]);
    if !hdels.is_empty() {
        hdels.push(super::to_owned(a));
        propagate_as(ctx, hdels);
    }
    ctx.out.int(new as i64);
    Ok(())
}

/// HGET and HEXISTS: one field, with lazy expiry.
fn get_one(ctx: &mut Ctx, a: &[&[u8]]) -> Result<Option<Blob>, Cow<'static, str>> {
    if read_as!(ctx, &a[1], Hash).is_none() {
        return Ok(None);
    }
    let (now, mode, db) = (ctx.now, mode(ctx), ctx.cl.db);
    let mut hdels = Vec::new();
    let v = hash_mut(ctx.srv, db, a[1])
        .and_then(|h| live(h, a[1], a[2], now, mode, &mut hdels).cloned());
    if !hdels.is_empty() {
        finish(ctx, a[1]);
        propagate_as(ctx, hdels);
    }
    Ok(v)
}

pub(super) fn hget(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    match get_one(ctx, a)? {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}

pub(super) fn hexists(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let found = get_one(ctx, a)?.is_some();
    ctx.out.int(found as i64);
    Ok(())
}

pub(super) fn hdel(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = match write_as!(ctx, &a[1], Hash) {
        Some(h) => a[2..].iter().filter(|f| h.remove(&f[..]).is_some()).count(),
        None => 0,
    };
    finish(ctx, a[1]);
    ctx.out.int(n as i64);
    Ok(())
}

pub(super) fn hgetall(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let now = ctx.now;
    let items: Vec<(Blob, Blob)> = read_as!(ctx, &a[1], Hash)
        .map(|h| h.live(now).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    ctx.out.array(items.len() * 2);
    for (k, v) in items {
        ctx.out.bulk(&k);
        ctx.out.bulk(&v);
    }
    Ok(())
}

pub(super) fn hlen(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = read_as!(ctx, &a[1], Hash).map_or(0, |h| h.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub(super) fn hincrby(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let by = int(a[3])?;
    let (now, mode, db) = (ctx.now, mode(ctx), ctx.cl.db);
    write_or_create!(ctx, &a[1], Hash, Box::default());
    let mut hdels = Vec::new();
    let Some(h) = hash_mut(ctx.srv, db, a[1]) else {
        return Ok(());
    };
    let cur = match live(h, a[1], a[2], now, mode, &mut hdels) {
        Some(v) => parse_i64(v).ok_or("ERR hash value is not an integer"),
        None => Ok(0),
    };
    let n = cur.and_then(|cur| {
        cur.checked_add(by)
            .ok_or("ERR increment or decrement would overflow")
    });
    if let Ok(n) = n {
        // The field keeps its TTL, as in Redis 8.
        h.insert_keep_ttl(a[2], n.to_string().into_bytes().into());
    }
    finish(ctx, a[1]);
    if !hdels.is_empty() {
        if n.is_ok() {
            hdels.push(super::to_owned(a));
        }
        propagate_as(ctx, hdels);
    }
    ctx.out.int(n?);
    Ok(())
}

/// An `NX`/`XX`/`GT`/`LT` condition of `H*EXPIRE*`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Cond {
    Always,
    Nx,
    Xx,
    Gt,
    Lt,
}

/// What setting one field's expiry did: Redis's per-field replies.
#[derive(Clone, Copy, PartialEq, Debug)]
enum SetEx {
    NoField = -2,
    NotMet = 0,
    Set = 1,
    Deleted = 2,
}

/// Sets the expiry of a stored field under `cond`, as Redis 8.2's `hashTypeSetEx`: a field
/// without TTL meets `NX` and `LT` but not `XX` or `GT`; a time already `past` deletes the
/// field instead.
fn set_field_expire(h: &mut Hash, field: &[u8], at: i64, cond: Cond, past: bool) -> SetEx {
    if h.get(field).is_none() {
        return SetEx::NoField;
    }
    let met = match h.expire_of(field) {
        None => !matches!(cond, Cond::Xx | Cond::Gt),
        Some(prev) => match cond {
            Cond::Always | Cond::Xx => true,
            Cond::Nx => false,
            Cond::Gt => at > prev,
            Cond::Lt => at < prev,
        },
    };
    if !met {
        SetEx::NotMet
    } else if past {
        h.remove(field);
        SetEx::Deleted
    } else {
        h.set_expire(field, Some(at));
        SetEx::Set
    }
}

/// Whether setting a field's expiry to `at` deletes it instead: the time is not after now, on
/// a master (Redis's `checkAlreadyExpired`; a replica keeps the TTL and waits for the HDEL).
fn already_expired(ctx: &Ctx, at: i64) -> bool {
    at <= ctx.now && !ctx.srv.is_replica()
}

/// HEXPIRE, HPEXPIRE, HEXPIREAT, HPEXPIREAT `key time [NX|XX|GT|LT] FIELDS n field...`.
pub(super) fn hexpire(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let name = a[0].to_ascii_lowercase();
    let (seconds, relative) = match name.as_slice() {
        b"hexpire" => (true, true),
        b"hpexpire" => (false, true),
        b"hexpireat" => (true, false),
        _ => (false, false),
    };
    let exists = write_as!(ctx, &a[1], Hash).is_some();
    let at = parse_expire(&name, a[2], seconds, if relative { ctx.now } else { 0 })?;
    let cond = match a[3].to_ascii_lowercase().as_slice() {
        b"nx" => Cond::Nx,
        b"xx" => Cond::Xx,
        b"gt" => Cond::Gt,
        b"lt" => Cond::Lt,
        _ => Cond::Always,
    };
    let numfields_at = if cond == Cond::Always { 4 } else { 5 };
    let fields = fields_block(
        a,
        numfields_at - 1,
        "ERR Parameter `numFields` should be greater than 0",
    )?;
    propagate_as(ctx, Vec::new());
    ctx.out.array(fields.len());
    let past = already_expired(ctx, at);
    let db = ctx.cl.db;
    let Some(h) = exists.then(|| hash_mut(ctx.srv, db, a[1])).flatten() else {
        for _ in fields {
            ctx.out.int(SetEx::NoField as i64);
        }
        return Ok(());
    };
    let mut cmds = Vec::new();
    let mut set = Vec::new();
    for f in fields {
        let r = set_field_expire(h, f, at, cond, past);
        match r {
            SetEx::Set => set.push(*f),
            SetEx::Deleted => cmds.push(propagate::hdel(a[1], f)),
            _ => {}
        }
        ctx.out.int(r as i64);
    }
    finish(ctx, a[1]);
    if !set.is_empty() {
        cmds.push(propagate::hexpire(a, numfields_at, at, &set));
    }
    propagate_as(ctx, cmds);
    Ok(())
}

/// HPERSIST `key FIELDS n field...`: -2 no such field (or expired), -1 no TTL, 1 persisted.
pub(super) fn hpersist(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let exists = write_as!(ctx, &a[1], Hash).is_some();
    let fields = fields_block(a, 2, NUMFIELDS_POSITIVE)?;
    let (now, mode, db) = (ctx.now, mode(ctx), ctx.cl.db);
    ctx.out.array(fields.len());
    let mut changed = false;
    let h = exists.then(|| hash_mut(ctx.srv, db, a[1])).flatten();
    match h {
        None => {
            for _ in fields {
                ctx.out.int(-2);
            }
        }
        Some(h) => {
            for f in fields {
                let r = match h.expire_of(f) {
                    _ if h.get(f).is_none() => -2,
                    None => -1,
                    Some(t) if t < now && mode != Mode::Stream => -2,
                    Some(_) => {
                        h.set_expire(f, None);
                        changed = true;
                        1
                    }
                };
                ctx.out.int(r);
            }
        }
    }
    finish(ctx, a[1]);
    if !changed {
        propagate_as(ctx, Vec::new());
    }
    Ok(())
}

/// HTTL, HPTTL, HEXPIRETIME, HPEXPIRETIME `key FIELDS n field...`: -2 no such field (or
/// expired), -1 no TTL, else the TTL or the expiry time (seconds rounded up).
pub(super) fn httl(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let now = ctx.now;
    let (seconds, base) = match a[0].to_ascii_lowercase().as_slice() {
        b"httl" => (true, now),
        b"hpttl" => (false, now),
        b"hexpiretime" => (true, 0),
        _ => (false, 0),
    };
    let replies: Option<Vec<i64>> = read_as!(ctx, &a[1], Hash).map(|h| {
        a.get(4..)
            .unwrap_or_default()
            .iter()
            .map(|f| match h.expire_of(f) {
                _ if h.get(f).is_none() => -2,
                None => -1,
                Some(t) if t < now => -2,
                Some(t) if seconds => (t + 999 - base) / 1000,
                Some(t) => t - base,
            })
            .collect()
    });
    let fields = fields_block(a, 2, NUMFIELDS_POSITIVE)?;
    ctx.out.array(fields.len());
    match replies {
        Some(r) => r.into_iter().for_each(|r| ctx.out.int(r)),
        None => fields.iter().for_each(|_| ctx.out.int(-2)),
    }
    Ok(())
}

/// HSETEX `key [FNX|FXX] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL] FIELDS n field value...`:
/// 1 when the fields were set, 0 when `FNX`/`FXX` did not hold.
pub(super) fn hsetex(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let opts = HsetexArgs::parse(a, ctx.now)?;
    let (now, mode, db) = (ctx.now, mode(ctx), ctx.cl.db);
    let exists = write_as!(ctx, &a[1], Hash).is_some();
    propagate_as(ctx, Vec::new());
    if !exists {
        if opts.fxx {
            ctx.out.int(0);
            return Ok(());
        }
        ctx.db().set(a[1], Value::Hash(Box::default()), None);
    }
    let pairs = &a[opts.first_field..];
    let past = opts.expire.is_some_and(|(_, at)| already_expired(ctx, at));
    let mut cmds = Vec::new();
    let Some(h) = hash_mut(ctx.srv, db, a[1]) else {
        return Ok(());
    };
    if opts.fnx || opts.fxx {
        // Every field must be present (FXX) or absent (FNX); expired ones count as absent.
        let mut found = 0;
        for kv in pairs.chunks_exact(2) {
            let exists = live(h, a[1], kv[0], now, mode, &mut cmds).is_some();
            found += exists as usize;
            if (opts.fxx && !exists) || (opts.fnx && exists) {
                break;
            }
        }
        let holds = if opts.fxx {
            found == pairs.len() / 2
        } else {
            found == 0
        };
        if !holds {
            finish(ctx, a[1]);
            propagate_as(ctx, cmds);
            ctx.out.int(0);
            return Ok(());
        }
    }
    let keep_ttl = opts.keep_ttl || opts.expire.is_some();
    let mut deleted = false;
    for kv in pairs.chunks_exact(2) {
        if keep_ttl {
            h.insert_keep_ttl(kv[0], kv[1][..].into());
        } else {
            h.insert(kv[0], kv[1][..].into());
        }
        if let Some((_, at)) = opts.expire {
            if set_field_expire(h, kv[0], at, Cond::Always, past) == SetEx::Deleted {
                deleted = true;
                cmds.push(propagate::hdel(a[1], kv[0]));
            }
        }
    }
    finish(ctx, a[1]);
    if !deleted {
        cmds.push(match opts.expire {
            Some((pos, at)) => propagate::hsetex(a, pos, at),
            None => super::to_owned(a),
        });
    }
    propagate_as(ctx, cmds);
    ctx.out.int(1);
    Ok(())
}

/// The options of an `HSETEX`.
#[derive(Debug, Default, PartialEq)]
struct HsetexArgs {
    fnx: bool,
    fxx: bool,
    keep_ttl: bool,
    /// The index of the `EX`/`PX`/`EXAT`/`PXAT` token, and the absolute expiry in ms.
    expire: Option<(usize, i64)>,
    /// The index of the first field.
    first_field: usize,
}

impl HsetexArgs {
    /// Parses as Redis's `hsetexParseArgs` (before the key is looked up).
    fn parse(a: &[&[u8]], now: i64) -> Result<HsetexArgs, Cow<'static, str>> {
        let mut o = HsetexArgs::default();
        let mut i = 2;
        while i < a.len() {
            let t = a[i].to_ascii_lowercase();
            match t.as_slice() {
                b"fields" => {
                    if i + 3 >= a.len() {
                        return Err(arity_error(a[0]));
                    }
                    let n = parse_i64(a[i + 1])
                        .filter(|n| (1..=i64::from(i32::MAX)).contains(n))
                        .ok_or("ERR invalid number of fields")?;
                    let remaining = a.len() - i - 2;
                    if !remaining.is_multiple_of(2)
                        || usize::try_from(n).ok() != Some(remaining / 2)
                    {
                        return Err(arity_error(a[0]));
                    }
                    o.first_field = i + 2;
                    return Ok(o);
                }
                b"ex" | b"px" | b"exat" | b"pxat" | b"keepttl" => {
                    if o.keep_ttl || o.expire.is_some() {
                        return Err("ERR Only one of EX, PX, EXAT, PXAT or KEEPTTL arguments can be specified".into());
                    }
                    if t.as_slice() == b"keepttl" {
                        o.keep_ttl = true;
                    } else {
                        let v = a.get(i + 1).ok_or("ERR missing expire time")?;
                        let seconds = matches!(t.as_slice(), b"ex" | b"exat");
                        let base = if matches!(t.as_slice(), b"ex" | b"px") {
                            now
                        } else {
                            0
                        };
                        o.expire = Some((i, parse_expire(a[0], v, seconds, base)?));
                        i += 1;
                    }
                }
                b"fnx" | b"fxx" => {
                    if o.fnx || o.fxx {
                        return Err("ERR Only one of FXX or FNX arguments can be specified".into());
                    }
                    o.fnx = t.as_slice() == b"fnx";
                    o.fxx = !o.fnx;
                }
                _ => return Err(format!("ERR unknown argument: {}", lossy(a[i])).into()),
            }
            i += 1;
        }
        Err(arity_error(a[0]))
    }
}

/// HGETEX `key [EX s|PX ms|EXAT s|PXAT ms|PERSIST] FIELDS n field...`: the values (nil for a
/// missing or expired field), setting or removing the TTL of the fields found.
pub(super) fn hgetex(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let exists = write_as!(ctx, &a[1], Hash).is_some();
    let opt = a[2].to_ascii_lowercase();
    let (expire, persist, fields_at) = match opt.as_slice() {
        b"ex" | b"px" | b"exat" | b"pxat" => {
            let seconds = matches!(opt.as_slice(), b"ex" | b"exat");
            let base = if matches!(opt.as_slice(), b"ex" | b"px") {
                ctx.now
            } else {
                0
            };
            (Some(parse_expire(a[0], a[3], seconds, base)?), false, 4)
        }
        b"persist" => (None, true, 3),
        _ => (None, false, 2),
    };
    let fields = fields_block(a, fields_at, NUMFIELDS_POSITIVE)?;
    propagate_as(ctx, Vec::new());
    ctx.out.array(fields.len());
    let (now, mode, db) = (ctx.now, mode(ctx), ctx.cl.db);
    let past = expire.is_some_and(|at| already_expired(ctx, at));
    let Some(h) = exists.then(|| hash_mut(ctx.srv, db, a[1])).flatten() else {
        fields.iter().for_each(|_| ctx.out.null());
        return Ok(());
    };
    let mut cmds = Vec::new();
    let mut updated = false;
    for f in fields {
        let Some(v) = live(h, a[1], f, now, mode, &mut cmds) else {
            ctx.out.null();
            continue;
        };
        ctx.out.bulk(v);
        if let Some(at) = expire {
            match set_field_expire(h, f, at, Cond::Always, past) {
                SetEx::Deleted => cmds.push(propagate::hdel(a[1], f)),
                SetEx::Set => updated = true,
                _ => {}
            }
        } else if persist && h.expire_of(f).is_some() {
            h.set_expire(f, None);
            updated = true;
        }
    }
    finish(ctx, a[1]);
    if updated {
        cmds.push(propagate::hgetex(a, fields_at, expire));
    }
    propagate_as(ctx, cmds);
    Ok(())
}

/// HGETDEL `key FIELDS n field...`: the values (nil for a missing or expired field), deleting
/// the fields found.
pub(super) fn hgetdel(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let exists = write_as!(ctx, &a[1], Hash).is_some();
    let fields = fields_block(a, 2, NUMFIELDS_POSITIVE)?;
    propagate_as(ctx, Vec::new());
    ctx.out.array(fields.len());
    let (now, mode, db) = (ctx.now, mode(ctx), ctx.cl.db);
    let Some(h) = exists.then(|| hash_mut(ctx.srv, db, a[1])).flatten() else {
        fields.iter().for_each(|_| ctx.out.null());
        return Ok(());
    };
    let mut cmds = Vec::new();
    let mut deleted = false;
    for f in fields {
        match live(h, a[1], f, now, mode, &mut cmds) {
            Some(v) => {
                ctx.out.bulk(v);
                h.remove(f);
                deleted = true;
            }
            None => ctx.out.null(),
        }
    }
    finish(ctx, a[1]);
    if deleted {
        cmds.push(propagate::hgetdel(a));
    }
    propagate_as(ctx, cmds);
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use crate::app::commands::execute;
    use crate::app::config::Config;
    use crate::app::reply::Out;
    use crate::app::server::{Client, Server};

    fn argv(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn run(s: &mut Server, c: &mut Client, line: &str) -> String {
        let mut out = Out::new();
        execute(s, c, &argv(line), &mut out);
        String::from_utf8_lossy(&out.take()).into_owned()
    }

    /// A master whose propagated commands are collected (as inside a transaction).
    fn master() -> (Server, Client) {
        let mut s = Server::new(Config::default());
        s.tx_propagate = Some(Vec::new());
        (s, Client::new(1, true))
    }

    /// The commands propagated since the last call, as text.
    fn stream(s: &mut Server) -> Vec<String> {
        let cmds = s.tx_propagate.replace(Vec::new()).unwrap_or_default();
        cmds.into_iter()
            .map(|(_, argv)| {
                argv.iter()
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    fn sleep_ms(n: u64) {
        std::thread::sleep(std::time::Duration::from_millis(n));
    }

    #[test]
    fn master_deletes_expired_fields_lazily_and_propagates_hdel() {
        let (mut s, mut c) = master();
        run(&mut s, &mut c, "hset h a 1 b 2");
        assert_eq!(
            run(&mut s, &mut c, "hpexpire h 1 FIELDS 2 a zz"),
            "*2\r\n:1\r\n:-2\r\n"
        );
        let at = stream(&mut s);
        assert_eq!(at[0], "hset h a 1 b 2");
        assert!(
            at[1].starts_with("HPEXPIREAT h ") && at[1].ends_with(" FIELDS 1 a"),
            "{at:?}"
        );
        sleep_ms(5);
        // Stored until looked up: HLEN counts it, HGETALL skips it.
        assert_eq!(run(&mut s, &mut c, "hlen h"), ":2\r\n");
        assert_eq!(
            run(&mut s, &mut c, "hgetall h"),
            "*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
        );
        assert!(stream(&mut s).is_empty());
        assert_eq!(run(&mut s, &mut c, "hget h a"), "$-1\r\n");
        assert_eq!(stream(&mut s), vec!["HDEL h a"]);
        assert_eq!(run(&mut s, &mut c, "hlen h"), ":1\r\n");
        // The last field: the hash goes, with no DEL (the HDEL empties the replicas' too).
        run(&mut s, &mut c, "hpexpire h 1 FIELDS 1 b");
        stream(&mut s);
        sleep_ms(5);
        assert_eq!(run(&mut s, &mut c, "hexists h b"), ":0\r\n");
        assert_eq!(stream(&mut s), vec!["HDEL h b"]);
        assert_eq!(run(&mut s, &mut c, "exists h"), ":0\r\n");
    }

    #[test]
    fn writes_propagate_in_redis_82_forms() {
        let (mut s, mut c) = master();
        run(&mut s, &mut c, "hset h a 1 b 2 c 3");
        stream(&mut s);
        // Past time: the field is deleted and only the HDEL goes out.
        assert_eq!(
            run(&mut s, &mut c, "hexpire h 0 FIELDS 1 c"),
            "*1\r\n:2\r\n"
        );
        assert_eq!(stream(&mut s), vec!["HDEL h c"]);
        assert_eq!(run(&mut s, &mut c, "hsetex h FXX FIELDS 1 zz 1"), ":0\r\n");
        assert!(stream(&mut s).is_empty());
        assert_eq!(
            run(&mut s, &mut c, "hgetex h PERSIST FIELDS 2 a zz"),
            "*2\r\n$1\r\n1\r\n$-1\r\n"
        );
        assert!(
            stream(&mut s).is_empty(),
            "nothing to persist: not propagated"
        );
        run(&mut s, &mut c, "hsetex h PXAT 70000000000000 FIELDS 1 a 5");
        assert_eq!(
            stream(&mut s),
            vec!["hsetex h PXAT 70000000000000 FIELDS 1 a 5"]
        );
        assert_eq!(
            run(&mut s, &mut c, "hgetex h PERSIST FIELDS 2 a zz"),
            "*2\r\n$1\r\n5\r\n$-1\r\n"
        );
        assert_eq!(stream(&mut s), vec!["HPERSIST h FIELDS 2 a zz"]);
        run(&mut s, &mut c, "hgetdel h FIELDS 2 b zz");
        assert_eq!(stream(&mut s), vec!["HDEL h b zz"]);
        let before = crate::app::store::now_ms();
        run(&mut s, &mut c, "hsetex h EX 100 FIELDS 1 a 6");
        let out = stream(&mut s);
        let w: Vec<&str> = out[0].split(' ').collect();
        assert_eq!((w[0], w[2], w[4]), ("hsetex", "PXAT", "FIELDS"));
        let at: i64 = w[3].parse().unwrap_or(0);
        assert!(
            (before + 100_000..before + 101_000).contains(&at),
            "{out:?}"
        );
    }

    #[test]
    fn replica_hides_expired_fields_and_waits_for_the_master() {
        let mut s = Server::new(Config::default());
        s.replicate("127.0.0.1".into(), 1);
        let mut m = Client::master();
        let mut c = Client::new(1, true);
        // From the master, a time already past sets a TTL in the past (no deletion).
        run(&mut s, &mut m, "hset h a 1 b 2");
        run(&mut s, &mut m, "hpexpireat h 1 FIELDS 1 a");
        assert_eq!(run(&mut s, &mut c, "hget h a"), "$-1\r\n");
        assert_eq!(run(&mut s, &mut c, "hexists h a"), ":0\r\n");
        assert_eq!(run(&mut s, &mut c, "hlen h"), ":2\r\n");
        assert_eq!(
            run(&mut s, &mut c, "hgetall h"),
            "*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
        );
        assert_eq!(
            run(&mut s, &mut c, "httl h FIELDS 2 a b"),
            "*2\r\n:-2\r\n:-1\r\n"
        );
        // The master's stream still sees it (HINCRBY keeps the TTL), until its HDEL.
        run(&mut s, &mut m, "hincrby h a 1");
        assert_eq!(
            run(&mut s, &mut c, "hpexpiretime h FIELDS 1 a"),
            "*1\r\n:-2\r\n"
        );
        run(&mut s, &mut m, "hpersist h FIELDS 1 a");
        assert_eq!(run(&mut s, &mut c, "hget h a"), "$1\r\n2\r\n");
        run(&mut s, &mut m, "hdel h a b");
        assert_eq!(run(&mut s, &mut c, "exists h"), ":0\r\n");
    }

    #[test]
    fn hash_commands_honour_field_ttls() {
        let (mut s, mut c) = master();
        run(&mut s, &mut c, "hset h a 1");
        run(&mut s, &mut c, "hpexpireat h 70000000000000 FIELDS 1 a");
        assert_eq!(run(&mut s, &mut c, "hincrby h a 2"), ":3\r\n");
        assert_eq!(
            run(&mut s, &mut c, "hpexpiretime h FIELDS 1 a"),
            "*1\r\n:70000000000000\r\n"
        );
        assert_eq!(run(&mut s, &mut c, "hset h a 4"), ":0\r\n");
        assert_eq!(
            run(&mut s, &mut c, "hpexpiretime h FIELDS 1 a"),
            "*1\r\n:-1\r\n"
        );
        assert_eq!(s.store.dbs[0].snapshot().field_ttl_hashes(), 0);
        run(&mut s, &mut c, "hpexpire h 1 FIELDS 1 a");
        sleep_ms(5);
        assert_eq!(run(&mut s, &mut c, "hsetnx h a 5"), ":1\r\n");
        assert_eq!(
            stream(&mut s).last().map(String::as_str),
            Some("hsetnx h a 5")
        );
        assert_eq!(run(&mut s, &mut c, "hget h a"), "$1\r\n5\r\n");
    }

    #[test]
    fn hsetex_arguments_parse_like_redis() {
        use super::HsetexArgs;
        let p = |l: &str| {
            let a = argv(l);
            HsetexArgs::parse(&a.iter().map(|w| &w[..]).collect::<Vec<_>>(), 1000)
        };
        let ok = p("hsetex k FNX EX 2 FIELDS 1 f v").unwrap_or_default();
        assert_eq!(
            (ok.fnx, ok.expire, ok.first_field),
            (true, Some((3, 3000)), 7)
        );
        for (line, err) in [
            (
                "hsetex k FIELDS 2 f v",
                "ERR wrong number of arguments for 'hsetex' command",
            ),
            (
                "hsetex k KEEPTTL PX 1 FIELDS 1 f v",
                "ERR Only one of EX, PX, EXAT, PXAT or KEEPTTL arguments can be specified",
            ),
            (
                "hsetex k FXX FXX FIELDS 1 f v",
                "ERR Only one of FXX or FNX arguments can be specified",
            ),
            (
                "hsetex k PX -1 FIELDS 1 f v",
                "ERR invalid expire time, must be >= 0",
            ),
            (
                "hsetex k EXAT 70368744178 FIELDS 1 f v",
                "ERR invalid expire time in 'hsetex' command",
            ),
            ("hsetex k FIELDS x f v", "ERR invalid number of fields"),
            ("hsetex k NOPE FIELDS 1 f v", "ERR unknown argument: NOPE"),
        ] {
            assert_eq!(p(line).err().as_deref(), Some(err), "{line}");
        }
    }
}
