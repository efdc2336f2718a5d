//! String commands, as Redis's `t_string.c`: GET, SET, SETNX, SETEX/PSETEX, GETSET, APPEND,
//! INCR/DECR/INCRBY/DECRBY, MSET, MGET, STRLEN.

use std::borrow::Cow;

use crate::app::store::{Blob, Entry, Value};

use super::{int, Ctx, Res, SYNTAX, WRONGTYPE};

pub(super) fn get(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let (e, out) = ctx.read_out(a[1]);
    match e {
        None => out.null(),
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => out.bulk(s),
        Some(_) => return Err(WRONGTYPE.into()),
    }
    Ok(())
}

pub(super) fn set(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let (mut nx, mut xx, mut keepttl, mut get) = (false, false, false, false);
    let mut expire: Option<i64> = None;
    let mut i = 3;
    while i < a.len() {
        let o = a[i].to_ascii_lowercase();
        match o.as_slice() {
            b"nx" if !xx => nx = true,
            b"xx" if !nx => xx = true,
            b"get" => get = true,
            b"keepttl" if expire.is_none() => keepttl = true,
            b"ex" | b"px" | b"exat" | b"pxat"
                if !keepttl && expire.is_none() && i + 1 < a.len() =>
            {
                let v = int(a[i + 1])?;
                let bad = || Cow::from("ERR invalid expire time in 'set' command");
                if v <= 0 {
                    return Err(bad());
                }
                expire = Some(match o.as_slice() {
                    b"ex" => v
                        .checked_mul(1000)
                        .and_then(|x| x.checked_add(ctx.now))
                        .ok_or_else(bad)?,
                    b"px" => v.checked_add(ctx.now).ok_or_else(bad)?,
                    b"exat" => v.checked_mul(1000).ok_or_else(bad)?,
                    _ => v,
                });
                i += 1;
            }
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    if !(nx || xx || keepttl || get) {
        // The common case needs no look at the old value: one replace.
        ctx.db().set_string(a[1], a[2], expire);
        ctx.out.ok();
        return Ok(());
    }
    let old = ctx.write(a[1]).map(|e| (e.value.clone_if_str(), e.expire));
    if get {
        match &old {
            Some((None, _)) => return Err(WRONGTYPE.into()),
            Some((Some(s), _)) => ctx.out.bulk(s),
            None => ctx.out.null(),
        }
    }
    if (nx && old.is_some()) || (xx && old.is_none()) {
        if !get {
            ctx.out.null();
        }
        return Ok(());
    }
    let ttl = if keepttl {
        old.and_then(|o| o.1)
    } else {
        expire
    };
    ctx.db().set_string(a[1], a[2], ttl);
    if !get {
        ctx.out.ok();
    }
    Ok(())
}

impl Value {
    /// A copy of a string value (None for other types).
    fn clone_if_str(&self) -> Option<Blob> {
        match self {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        }
    }
}

pub(super) fn setnx(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    if ctx.exists(a[1]) {
        ctx.out.int(0);
    } else {
        ctx.db().set_string(a[1], a[2], None);
        ctx.out.int(1);
    }
    Ok(())
}

pub(super) fn setex(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let v = int(a[2])?;
    let name = if a[0].eq_ignore_ascii_case(b"setex") {
        "setex"
    } else {
        "psetex"
    };
    let bad = || Cow::from(format!("ERR invalid expire time in '{name}' command"));
    if v <= 0 {
        return Err(bad());
    }
    let ms = if name == "setex" {
        v.checked_mul(1000).ok_or_else(bad)?
    } else {
        v
    };
    let at = ms.checked_add(ctx.now).ok_or_else(bad)?;
    ctx.exists(a[1]);
    ctx.db().set_string(a[1], a[3], Some(at));
    ctx.out.ok();
    Ok(())
}

pub(super) fn getset(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    match ctx.write(a[1]) {
        None => ctx.out.null(),
        Some(Entry {
            value: Value::Str(s),
            ..
        }) => {
            let s = s.clone();
            ctx.out.bulk(&s);
        }
        Some(_) => return Err(WRONGTYPE.into()),
    }
    ctx.db().set_string(a[1], a[2], None);
    Ok(())
}

pub(super) fn append(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let len = match write_as!(ctx, &a[1], Str) {
        Some(s) => {
            let mut v = std::mem::take(s).into_vec();
            v.extend_from_slice(a[2]);
            let len = v.len();
            *s = v.into_boxed_slice();
            len
        }
        None => {
            ctx.db().set_string(a[1], a[2], None);
            a[2].len()
        }
    };
    ctx.out.int(len as i64);
    Ok(())
}

pub(super) fn incr(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let name = a[0].to_ascii_lowercase();
    let by = match name.as_slice() {
        b"incr" => 1,
        b"decr" => -1,
        b"incrby" => int(a[2])?,
        _ => int(a[2])?
            .checked_neg()
            .ok_or("ERR decrement would overflow")?,
    };
    let cur = match write_as!(ctx, &a[1], Str) {
        Some(s) => int(s)?,
        None => 0,
    };
    let n = cur
        .checked_add(by)
        .ok_or("ERR increment or decrement would overflow")?;
    let new: Blob = n.to_string().into_bytes().into();
    match ctx.write(a[1]) {
        Some(e) => e.value = Value::Str(new),
        None => ctx.db().set(a[1], Value::Str(new), None),
    }
    ctx.out.int(n);
    Ok(())
}

pub(super) fn mset(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    if a.len().is_multiple_of(2) {
        return Err("ERR wrong number of arguments for 'mset' command".into());
    }
    for kv in a[1..].chunks_exact(2) {
        ctx.exists(kv[0]);
        ctx.db().set_string(kv[0], kv[1], None);
    }
    ctx.out.ok();
    Ok(())
}

pub(super) fn mget(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    ctx.out.array(a.len() - 1);
    for k in &a[1..] {
        match ctx.read_out(k) {
            (
                Some(Entry {
                    value: Value::Str(s),
                    ..
                }),
                out,
            ) => out.bulk(s),
            (_, out) => out.null(),
        }
    }
    Ok(())
}

pub(super) fn strlen(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = read_as!(ctx, &a[1], Str).map_or(0, |s| s.len());
    ctx.out.int(n as i64);
    Ok(())
}
