//! List commands, as Redis's `t_list.c`: LPUSH/RPUSH, LPOP/RPOP, LRANGE, LLEN, LINDEX.

use std::collections::VecDeque;

use crate::app::store::Blob;

use super::{int, parse_i64, range, Ctx, Res, SYNTAX};

pub(super) fn push(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let left = a[0].eq_ignore_ascii_case(b"lpush");
    let l = write_or_create!(ctx, &a[1], List, Box::default());
    for v in &a[2..] {
        if left {
            l.push_front(v[..].into());
        } else {
            l.push_back(v[..].into());
        }
    }
    let n = l.len();
    ctx.out.int(n as i64);
    Ok(())
}

pub(super) fn pop(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    if a.len() > 3 {
        return Err(SYNTAX.into());
    }
    let left = a[0].eq_ignore_ascii_case(b"lpop");
    let count = match a.get(2) {
        Some(c) => Some(
            parse_i64(c)
                .filter(|n| *n >= 0)
                .ok_or("ERR value is out of range, must be positive")?,
        ),
        None => None,
    };
    let Some(l) = write_as!(ctx, &a[1], List) else {
        if count.is_some() {
            ctx.out.null_array();
        } else {
            ctx.out.null();
        }
        return Ok(());
    };
    let take = |l: &mut VecDeque<Blob>| if left { l.pop_front() } else { l.pop_back() };
    match count {
        None => {
            let v = take(l);
            match v {
                Some(v) => ctx.out.bulk(&v),
                None => ctx.out.null(),
            }
        }
        Some(n) => {
            let n = (n as usize).min(l.len());
            let items: Vec<Blob> = (0..n).filter_map(|_| take(l)).collect();
            ctx.out.array(items.len());
            for v in items {
                ctx.out.bulk(&v);
            }
        }
    }
    ctx.drop_if_empty(a[1]);
    Ok(())
}
pub(super) fn lrange(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let (s, e) = (int(a[2])?, int(a[3])?);
    let Some(l) = read_as!(ctx, &a[1], List) else {
        ctx.out.array(0);
        return Ok(());
    };
    let items: Vec<Blob> = match range(s, e, l.len()) {
        Some((s, e)) => l.range(s..=e).cloned().collect(),
        None => Vec::new(),
    };
    ctx.out.array(items.len());
    for v in items {
        ctx.out.bulk(&v);
    }
    Ok(())
}

pub(super) fn llen(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = read_as!(ctx, &a[1], List).map_or(0, |l| l.len());
    ctx.out.int(n as i64);
    Ok(())
}

pub(super) fn lindex(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let i = int(a[2])?;
    let v = read_as!(ctx, &a[1], List).and_then(|l| {
        let i = if i < 0 { l.len() as i64 + i } else { i };
        usize::try_from(i).ok().and_then(|i| l.get(i).cloned())
    });
    match v {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}
