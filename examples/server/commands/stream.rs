//! Stream commands, as Redis's `t_stream.c`: XADD, XRANGE, XLEN, XDEL, XGROUP, XREADGROUP,
//! XACK and the XCLAIM form a master propagates.

use std::borrow::Cow;

use crate::app::reply::Out;
use crate::app::store::{Blob, Consumer, Entry, Group, Pending, Stream, StreamId, Value};

use super::{eq, int, lossy, parse_i64, Ctx, Res, SYNTAX, WRONGTYPE};

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

fn reply_entries(out: &mut Out, entries: &[(StreamId, Vec<(Blob, Blob)>)]) {
    out.array(entries.len());
    for (id, fields) in entries {
        out.array(2);
        out.bulk(&id.to_bytes());
        out.array(fields.len() * 2);
        for (f, v) in fields {
            out.bulk(f);
            out.bulk(v);
        }
    }
}

pub(super) fn xadd(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let mut i = 2;
    let (mut nomk, mut maxlen, mut minid) = (false, None, None);
    loop {
        let Some(o) = a.get(i) else {
            return Err(SYNTAX.into());
        };
        if eq(o, "nomkstream") {
            nomk = true;
            i += 1;
        } else if eq(o, "maxlen") || eq(o, "minid") {
            let mut j = i + 1;
            if a.get(j).is_some_and(|x| &x[..] == b"=" || &x[..] == b"~") {
                j += 1;
            }
            let v = a.get(j).ok_or(SYNTAX)?;
            if eq(o, "maxlen") {
                maxlen = Some(
                    parse_i64(v)
                        .filter(|n| *n >= 0)
                        .ok_or("ERR The MAXLEN argument must be >= 0.")?
                        as usize,
                );
            } else {
                minid = Some(StreamId::parse(v, 0).ok_or(INVALID_ID)?);
            }
            i = j + 1;
            if a.get(i).is_some_and(|x| eq(x, "limit")) {
                int(a.get(i + 1).ok_or(SYNTAX)?)?;
                i += 2;
            }
        } else {
            break;
        }
    }
    let id_arg = &a[i];
    let fields = &a[i + 1..];
    if fields.is_empty() || !fields.len().is_multiple_of(2) {
        return Err("ERR wrong number of arguments for 'xadd' command".into());
    }
    let explicit = if &id_arg[..] == b"*" {
        None
    } else if let Some(ms) = id_arg.strip_suffix(b"-*") {
        Some((StreamId::parse(ms, 0).ok_or(INVALID_ID)?, true))
    } else {
        Some((StreamId::parse(id_arg, 0).ok_or(INVALID_ID)?, false))
    };
    if explicit.is_some_and(|(id, auto)| !auto && id == StreamId::default()) {
        return Err("ERR The ID specified in XADD must be greater than 0-0".into());
    }
    let exists = match ctx.write(a[1]) {
        None => false,
        Some(Entry {
            value: Value::Stream(_),
            ..
        }) => true,
        Some(_) => return Err(WRONGTYPE.into()),
    };
    if !exists {
        if nomk {
            ctx.out.null();
            return Ok(());
        }
        ctx.db().set(a[1], Value::Stream(Box::default()), None);
    }
    let now = ctx.now.max(0) as u64;
    let Some(Entry {
        value: Value::Stream(s),
        ..
    }) = ctx.db().get_mut(a[1], i64::MIN)
    else {
        unreachable!("the stream exists")
    };
    let last = s.last_id;
    let id = match explicit {
        None => {
            if now > last.ms {
                StreamId { ms: now, seq: 0 }
            } else {
                last.next().ok_or(
                    "ERR The stream has exhausted the last possible ID, unable to add more items",
                )?
            }
        }
        Some((id, true)) => {
            if id.ms == last.ms && s.entries_added > 0 {
                last.next().filter(|n| n.ms == id.ms).ok_or(
                    "ERR The ID specified in XADD is equal or smaller than the target stream top item",
                )?
            } else if id.ms > last.ms || (s.entries_added == 0 && last == StreamId::default()) {
                StreamId {
                    ms: id.ms,
                    seq: if id.ms == 0 { 1 } else { 0 },
                }
            } else {
                return Err("ERR The ID specified in XADD is equal or smaller than the target stream top item".into());
            }
        }
        Some((id, false)) => {
            if id <= last {
                return Err("ERR The ID specified in XADD is equal or smaller than the target stream top item".into());
            }
            id
        }
    };
    let pairs = fields
        .chunks_exact(2)
        .map(|p| (p[0][..].into(), p[1][..].into()))
        .collect();
    s.entries.insert(id, pairs);
    s.last_id = id;
    s.entries_added += 1;
    if let Some(max) = maxlen {
        while s.entries.len() > max {
            if let Some((old, _)) = s.entries.pop_first() {
                s.max_deleted_id = s.max_deleted_id.max(old);
            }
        }
    }
    if let Some(min) = minid {
        while s.entries.first_key_value().is_some_and(|(k, _)| *k < min) {
            if let Some((old, _)) = s.entries.pop_first() {
                s.max_deleted_id = s.max_deleted_id.max(old);
            }
        }
    }
    s.first_id = s
        .entries
        .first_key_value()
        .map(|(k, _)| *k)
        .unwrap_or_default();
    ctx.out.bulk(&id.to_bytes());
    Ok(())
}

fn range_bound(b: &[u8], start: bool) -> Result<Option<StreamId>, Cow<'static, str>> {
    // Returns None for an exclusive bound that overflows (empty range).
    match b {
        b"-" => Ok(Some(StreamId::default())),
        b"+" => Ok(Some(StreamId::MAX)),
        _ => {
            let (excl, b) = match b.strip_prefix(b"(") {
                Some(r) => (true, r),
                None => (false, b),
            };
            let id = StreamId::parse(b, if start { 0 } else { u64::MAX }).ok_or(INVALID_ID)?;
            if !excl {
                return Ok(Some(id));
            }
            Ok(if start {
                id.next()
            } else if id.seq > 0 {
                Some(StreamId {
                    ms: id.ms,
                    seq: id.seq - 1,
                })
            } else if id.ms > 0 {
                Some(StreamId {
                    ms: id.ms - 1,
                    seq: u64::MAX,
                })
            } else {
                None
            })
        }
    }
}

pub(super) fn xrange(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let start = range_bound(a[2], true)?;
    let end = range_bound(a[3], false)?;
    let count = match a.len() {
        4 => usize::MAX,
        6 if eq(a[4], "count") => usize::try_from(int(a[5])?).unwrap_or(0),
        _ => return Err(SYNTAX.into()),
    };
    let items: Vec<(StreamId, Vec<(Blob, Blob)>)> = match (read_as!(ctx, &a[1], Stream), start, end)
    {
        (Some(s), Some(lo), Some(hi)) if lo <= hi => s
            .entries
            .range(lo..=hi)
            .take(count)
            .map(|(k, v)| (*k, v.clone()))
            .collect(),
        _ => Vec::new(),
    };
    reply_entries(ctx.out, &items);
    Ok(())
}

pub(super) fn xlen(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = read_as!(ctx, &a[1], Stream).map_or(0, |s| s.entries.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub(super) fn xdel(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let mut ids = Vec::new();
    for b in &a[2..] {
        ids.push(StreamId::parse(b, 0).ok_or(INVALID_ID)?);
    }
    let n = match write_as!(ctx, &a[1], Stream) {
        Some(s) => {
            let mut n = 0;
            for id in ids {
                if s.entries.remove(&id).is_some() {
                    s.max_deleted_id = s.max_deleted_id.max(id);
                    n += 1;
                }
            }
            s.first_id = s
                .entries
                .first_key_value()
                .map(|(k, _)| *k)
                .unwrap_or_default();
            n
        }
        None => 0,
    };
    ctx.out.int(n);
    Ok(())
}

fn group_id(s: &Stream, b: &[u8]) -> Result<StreamId, Cow<'static, str>> {
    if b == b"$" {
        Ok(s.last_id)
    } else {
        StreamId::parse(b, 0).ok_or(INVALID_ID.into())
    }
}

pub(super) fn xgroup(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let sub = a[1].to_ascii_lowercase();
    let need = match sub.as_slice() {
        b"create" => 5,
        b"setid" | b"createconsumer" | b"delconsumer" => 5,
        b"destroy" => 4,
        b"help" => 2,
        _ => 0,
    };
    if need == 0 || a.len() < need {
        return Err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.",
            lossy(a[1])
        )
        .into());
    }
    if sub == b"help" {
        ctx.out.array(1);
        ctx.out
            .simple("XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER");
        return Ok(());
    }
    let mut mkstream = false;
    let mut entries_read = None;
    let mut i = need;
    while i < a.len() {
        if eq(a[i], "mkstream") && sub == b"create" {
            mkstream = true;
            i += 1;
        } else if eq(a[i], "entriesread") && i + 1 < a.len() {
            entries_read = Some(int(a[i + 1])?);
            i += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let exists = match ctx.write(a[2]) {
        None => false,
        Some(Entry {
            value: Value::Stream(_),
            ..
        }) => true,
        Some(_) => return Err(WRONGTYPE.into()),
    };
    if !exists {
        if !mkstream {
            return Err(
                "ERR The XGROUP subcommand requires the key to exist. Note that for \
                        CREATE you may want to use the MKSTREAM option to create an empty \
                        stream automatically."
                    .into(),
            );
        }
        ctx.db().set(a[2], Value::Stream(Box::default()), None);
    }
    let now = ctx.now;
    let Some(Entry {
        value: Value::Stream(s),
        ..
    }) = ctx.db().get_mut(a[2], i64::MIN)
    else {
        unreachable!("the stream exists")
    };
    let name = a[3];
    let gi = s.groups.iter().position(|g| &g.name[..] == name);
    let nogroup = || {
        Cow::from(format!(
            "NOGROUP No such key '{}' or consumer group '{}'",
            lossy(a[2]),
            lossy(name)
        ))
    };
    match sub.as_slice() {
        b"create" => {
            if gi.is_some() {
                return Err("BUSYGROUP Consumer Group name already exists".into());
            }
            let last_id = group_id(s, a[4])?;
            s.groups.push(Group {
                name: name.into(),
                last_id,
                entries_read: entries_read.unwrap_or(-1),
                pending: Default::default(),
                consumers: Vec::new(),
            });
            ctx.out.ok();
        }
        b"setid" => {
            let gi = gi.ok_or_else(nogroup)?;
            let id = group_id(s, a[4])?;
            let g = &mut s.groups[gi];
            g.last_id = id;
            g.entries_read = entries_read.unwrap_or(-1);
            ctx.out.ok();
        }
        b"destroy" => {
            let n = match gi {
                Some(i) => {
                    s.groups.remove(i);
                    1
                }
                None => 0,
            };
            ctx.out.int(n);
        }
        b"createconsumer" => {
            let gi = gi.ok_or_else(nogroup)?;
            let g = &mut s.groups[gi];
            let created = consumer(g, a[4], now).1;
            ctx.out.int(created as i64);
        }
        _ => {
            let gi = gi.ok_or_else(nogroup)?;
            let g = &mut s.groups[gi];
            let n = match g.consumers.iter().position(|c| c.name[..] == a[4][..]) {
                Some(ci) => {
                    let c = g.consumers.remove(ci);
                    for id in &c.pending {
                        g.pending.remove(id);
                    }
                    c.pending.len()
                }
                None => 0,
            };
            ctx.out.int(n as i64);
        }
    }
    Ok(())
}

/// Finds or creates a consumer; returns its index and whether it was created.
fn consumer(g: &mut Group, name: &[u8], now: i64) -> (usize, bool) {
    match g.consumers.iter().position(|c| &c.name[..] == name) {
        Some(i) => (i, false),
        None => {
            g.consumers.push(Consumer {
                name: name.into(),
                seen_time: now,
                pending: Default::default(),
            });
            (g.consumers.len() - 1, true)
        }
    }
}

pub(super) fn xreadgroup(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    if !eq(a[1], "group") {
        return Err(SYNTAX.into());
    }
    let (gname, cname) = (a[2], a[3]);
    let (mut count, mut noack) = (usize::MAX, false);
    let mut i = 4;
    while i < a.len() && !eq(a[i], "streams") {
        if eq(a[i], "count") && i + 1 < a.len() {
            count = usize::try_from(int(a[i + 1])?).unwrap_or(0);
            if count == 0 {
                count = usize::MAX;
            }
            i += 2;
        } else if eq(a[i], "block") && i + 1 < a.len() {
            int(a[i + 1])?;
            i += 2;
        } else if eq(a[i], "noack") {
            noack = true;
            i += 1;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let rest = a.get(i + 1..).unwrap_or(&[]);
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err("ERR Unbalanced 'xreadgroup' list of streams: for each stream key an ID or '>' must be specified.".into());
    }
    let (keys, ids) = rest.split_at(rest.len() / 2);
    let now = ctx.now;
    let mut results = Vec::new();
    for (k, idb) in keys.iter().zip(ids) {
        let nogroup = || {
            Cow::from(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                lossy(k),
                lossy(gname)
            ))
        };
        let Some(s) = write_as!(ctx, k, Stream) else {
            return Err(nogroup());
        };
        let gi = s
            .groups
            .iter()
            .position(|g| g.name[..] == gname[..])
            .ok_or_else(nogroup)?;
        let Stream {
            entries, groups, ..
        } = &mut **s;
        let g = &mut groups[gi];
        let (ci, _) = consumer(g, cname, now);
        g.consumers[ci].seen_time = now;
        let mut got: Vec<(StreamId, Vec<(Blob, Blob)>)> = Vec::new();
        if &idb[..] == b">" {
            let from = g.last_id.next();
            if let Some(from) = from {
                for (id, f) in entries.range(from..).take(count) {
                    got.push((*id, f.clone()));
                }
            }
            for (id, _) in &got {
                g.last_id = *id;
                if g.entries_read >= 0 {
                    g.entries_read += 1;
                }
                if !noack {
                    g.pending.insert(
                        *id,
                        Pending {
                            consumer: cname[..].into(),
                            delivery_time: now,
                            delivery_count: 1,
                        },
                    );
                    g.consumers[ci].pending.insert(*id);
                }
            }
            if got.is_empty() {
                continue;
            }
        } else {
            let from = StreamId::parse(idb, 0).ok_or(INVALID_ID)?;
            let ids: Vec<StreamId> = g.consumers[ci]
                .pending
                .range(from..)
                .take(count)
                .copied()
                .collect();
            for id in ids {
                if let Some(p) = g.pending.get_mut(&id) {
                    p.delivery_time = now;
                    p.delivery_count += 1;
                }
                got.push((id, entries.get(&id).cloned().unwrap_or_default()));
            }
        }
        results.push((*k, got));
    }
    if results.is_empty() {
        ctx.out.null_array();
        return Ok(());
    }
    ctx.out.array(results.len());
    for (k, got) in results {
        ctx.out.array(2);
        ctx.out.bulk(k);
        reply_entries(ctx.out, &got);
    }
    Ok(())
}

pub(super) fn xack(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let mut ids = Vec::new();
    for b in &a[3..] {
        ids.push(StreamId::parse(b, 0).ok_or(INVALID_ID)?);
    }
    let mut n = 0;
    if let Some(s) = write_as!(ctx, &a[1], Stream) {
        if let Some(g) = s.groups.iter_mut().find(|g| g.name[..] == a[2][..]) {
            for id in ids {
                if let Some(p) = g.pending.remove(&id) {
                    if let Some(c) = g.consumers.iter_mut().find(|c| c.name == p.consumer) {
                        c.pending.remove(&id);
                    }
                    n += 1;
                }
            }
        }
    }
    ctx.out.int(n);
    Ok(())
}

/// XCLAIM, enough for what a master propagates for XREADGROUP:
/// `XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID LASTID id`.
pub(super) fn xclaim(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let min_idle = int(a[4])?;
    let mut ids = Vec::new();
    let mut i = 5;
    while i < a.len() {
        match StreamId::parse(a[i], 0) {
            Some(id) => ids.push(id),
            None => break,
        }
        i += 1;
    }
    let now = ctx.now;
    let (mut time, mut retry, mut force, mut justid, mut lastid) = (None, None, false, false, None);
    while i < a.len() {
        let o = a[i].to_ascii_lowercase();
        let val = a.get(i + 1);
        match o.as_slice() {
            b"idle" => {
                time = Some(now - int(val.ok_or(SYNTAX)?)?);
                i += 1;
            }
            b"time" => {
                time = Some(int(val.ok_or(SYNTAX)?)?);
                i += 1;
            }
            b"retrycount" => {
                retry = Some(int(val.ok_or(SYNTAX)?)?);
                i += 1;
            }
            b"lastid" => {
                lastid = Some(StreamId::parse(val.ok_or(SYNTAX)?, 0).ok_or(INVALID_ID)?);
                i += 1;
            }
            b"force" => force = true,
            b"justid" => justid = true,
            _ => return Err(format!("ERR Unrecognized XCLAIM option '{}'", lossy(a[i])).into()),
        }
        i += 1;
    }
    let cname = a[3];
    let Some(s) = write_as!(ctx, &a[1], Stream) else {
        return Err(format!(
            "NOGROUP No such key '{}' or consumer group '{}'",
            lossy(a[1]),
            lossy(a[2])
        )
        .into());
    };
    let Stream {
        entries, groups, ..
    } = &mut **s;
    let Some(g) = groups.iter_mut().find(|g| g.name[..] == a[2][..]) else {
        return Err(format!(
            "NOGROUP No such key '{}' or consumer group '{}'",
            lossy(a[1]),
            lossy(a[2])
        )
        .into());
    };
    if let Some(l) = lastid {
        if l > g.last_id {
            g.last_id = l;
        }
    }
    let (ci, _) = consumer(g, cname, now);
    let mut claimed = Vec::new();
    for id in ids {
        if !entries.contains_key(&id) {
            if let Some(p) = g.pending.remove(&id) {
                if let Some(c) = g.consumers.iter_mut().find(|c| c.name == p.consumer) {
                    c.pending.remove(&id);
                }
            }
            continue;
        }
        let prev = g.pending.get(&id).cloned();
        if prev.is_none() && !force {
            continue;
        }
        if let Some(p) = &prev {
            if min_idle > 0 && now - p.delivery_time < min_idle {
                continue;
            }
            if let Some(c) = g.consumers.iter_mut().find(|c| c.name == p.consumer) {
                c.pending.remove(&id);
            }
        }
        let count = retry.map(|r| r.max(0) as u64).unwrap_or_else(|| {
            prev.as_ref()
                .map_or(1, |p| p.delivery_count + u64::from(!justid))
        });
        g.pending.insert(
            id,
            Pending {
                consumer: cname[..].into(),
                delivery_time: time.unwrap_or(now),
                delivery_count: count,
            },
        );
        g.consumers[ci].pending.insert(id);
        claimed.push(id);
    }
    let claimed: Vec<(StreamId, Vec<(Blob, Blob)>)> = claimed
        .into_iter()
        .map(|id| {
            (
                id,
                if justid {
                    Vec::new()
                } else {
                    entries.get(&id).cloned().unwrap_or_default()
                },
            )
        })
        .collect();
    ctx.out.array(claimed.len());
    for (id, f) in claimed {
        if justid {
            ctx.out.bulk(&id.to_bytes());
        } else {
            reply_entries(ctx.out, &[(id, f)]);
        }
    }
    Ok(())
}
