//! Hash commands, as Redis's `t_hash.c`: HSET/HMSET, HSETNX, HGET, HDEL, HGETALL, HLEN,
//! HINCRBY.

use bytes::Bytes;

use crate::app::store::Blob;

use super::{int, lossy, parse_i64, Ctx, Res};

pub(super) fn hset(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    if !a.len().is_multiple_of(2) {
        return Err(format!(
            "ERR wrong number of arguments for '{}' command",
            lossy(&a[0].to_ascii_lowercase())
        )
        .into());
    }
    let h = write_or_create!(ctx, &a[1], Hash, Box::default());
    let n = a[2..]
        .chunks_exact(2)
        .filter(|kv| h.insert(kv[0][..].into(), kv[1][..].into()).is_none())
        .count();
    if a[0].eq_ignore_ascii_case(b"hmset") {
        ctx.out.ok();
    } else {
        ctx.out.int(n as i64);
    }
    Ok(())
}

pub(super) fn hsetnx(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let h = write_or_create!(ctx, &a[1], Hash, Box::default());
    let new = !h.contains_key(&a[2][..]);
    if new {
        h.insert(a[2][..].into(), a[3][..].into());
    }
    ctx.out.int(new as i64);
    Ok(())
}

pub(super) fn hget(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    match read_as!(ctx, &a[1], Hash)
        .and_then(|h| h.get(&a[2][..]))
        .cloned()
    {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}

pub(super) fn hdel(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = match write_as!(ctx, &a[1], Hash) {
        Some(h) => a[2..].iter().filter(|f| h.remove(&f[..]).is_some()).count(),
        None => 0,
    };
    ctx.drop_if_empty(&a[1]);
    ctx.out.int(n as i64);
    Ok(())
}

pub(super) fn hgetall(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let items: Vec<(Blob, Blob)> = read_as!(ctx, &a[1], Hash)
        .map(|h| h.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    ctx.out.array(items.len() * 2);
    for (k, v) in items {
        ctx.out.bulk(&k);
        ctx.out.bulk(&v);
    }
    Ok(())
}

pub(super) fn hlen(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = read_as!(ctx, &a[1], Hash).map_or(0, |h| h.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub(super) fn hincrby(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let by = int(&a[3])?;
    let h = write_or_create!(ctx, &a[1], Hash, Box::default());
    let cur = match h.get(&a[2][..]) {
        Some(v) => parse_i64(v).ok_or("ERR hash value is not an integer")?,
        None => 0,
    };
    let n = cur
        .checked_add(by)
        .ok_or("ERR increment or decrement would overflow")?;
    h.insert(a[2][..].into(), n.to_string().into_bytes().into());
    ctx.out.int(n);
    Ok(())
}
