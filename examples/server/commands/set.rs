//! Set commands, as Redis's `t_set.c`: SADD, SREM, SMEMBERS, SCARD, SISMEMBER.

use crate::app::store::Blob;

use super::{Ctx, Res};

pub(super) fn sadd(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let s = write_or_create!(ctx, &a[1], Set, Box::default());
    let n = a[2..].iter().filter(|m| s.insert(m[..].into())).count();
    ctx.out.int(n as i64);
    Ok(())
}

pub(super) fn srem(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = match write_as!(ctx, &a[1], Set) {
        Some(s) => a[2..].iter().filter(|m| s.remove(&m[..])).count(),
        None => 0,
    };
    ctx.drop_if_empty(a[1]);
    ctx.out.int(n as i64);
    Ok(())
}

pub(super) fn smembers(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let items: Vec<Blob> = read_as!(ctx, &a[1], Set)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    ctx.out.array(items.len());
    for v in items {
        ctx.out.bulk(&v);
    }
    Ok(())
}

pub(super) fn scard(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = read_as!(ctx, &a[1], Set).map_or(0, |s| s.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub(super) fn sismember(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = read_as!(ctx, &a[1], Set).is_some_and(|s| s.contains(a[2]));
    ctx.out.int(n as i64);
    Ok(())
}
