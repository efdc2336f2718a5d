//! Sorted-set commands, as Redis's `t_zset.c`: ZADD, ZREM, ZRANGE, ZSCORE, ZCARD.

use crate::app::store::{Blob, Score};

use super::{int, parse_f64, range, Ctx, Res, NOT_FLOAT, SYNTAX};

pub(super) fn zadd(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < a.len() {
        match a[i].to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            b"ch" => ch = true,
            b"incr" => incr = true,
            _ => break,
        }
        i += 1;
    }
    let rest = &a[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(SYNTAX.into());
    }
    if nx && xx {
        return Err("ERR XX and NX options at the same time are not compatible".into());
    }
    if ((gt || lt) && nx) || (gt && lt) {
        return Err("ERR GT, LT, and/or NX options at the same time are not compatible".into());
    }
    if incr && rest.len() > 2 {
        return Err("ERR INCR option supports a single increment-element pair".into());
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks_exact(2) {
        pairs.push((parse_f64(p[0]).ok_or(NOT_FLOAT)?, p[1]));
    }
    if xx && ctx.read(a[1]).is_none() {
        if incr {
            ctx.out.null();
        } else {
            ctx.out.int(0);
        }
        return Ok(());
    }
    let z = write_or_create!(ctx, &a[1], ZSet, Box::default());
    let (mut added, mut changed) = (0, 0);
    let mut result = None;
    for (score, m) in pairs {
        let cur = z.scores.get(m).copied();
        let new = match (cur, incr) {
            (Some(c), true) => c + score,
            _ => score,
        };
        if new.is_nan() {
            return Err("ERR resulting score is not a number (NaN)".into());
        }
        let allowed = match cur {
            None => !xx,
            Some(c) => !nx && (!gt || new > c) && (!lt || new < c),
        };
        if !allowed {
            continue;
        }
        result = Some(new);
        if z.insert(m, new) {
            added += 1;
        } else if cur != Some(new) {
            changed += 1;
        }
    }
    ctx.drop_if_empty(a[1]);
    if incr {
        match result {
            Some(s) => ctx.out.double(s),
            None => ctx.out.null(),
        }
    } else {
        ctx.out.int(if ch { added + changed } else { added });
    }
    Ok(())
}

pub(super) fn zrem(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = match write_as!(ctx, &a[1], ZSet) {
        Some(z) => a[2..].iter().filter(|m| z.remove(m)).count(),
        None => 0,
    };
    ctx.drop_if_empty(a[1]);
    ctx.out.int(n as i64);
    Ok(())
}

fn score_bound(b: &[u8]) -> Option<(f64, bool)> {
    match b.strip_prefix(b"(") {
        Some(r) => parse_f64(r).map(|v| (v, true)),
        None => parse_f64(b).map(|v| (v, false)),
    }
}

pub(super) fn zrange(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let (mut byscore, mut rev, mut scores, mut limit) = (false, false, false, None);
    let mut i = 4;
    while i < a.len() {
        match a[i].to_ascii_lowercase().as_slice() {
            b"byscore" => byscore = true,
            b"rev" => rev = true,
            b"withscores" => scores = true,
            b"limit" if i + 2 < a.len() => {
                limit = Some((int(a[i + 1])?, int(a[i + 2])?));
                i += 2;
            }
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    if limit.is_some() && !byscore {
        return Err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
                .into(),
        );
    }
    let items: Vec<(f64, Blob)> = if byscore {
        let (lo, hi) = if rev { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
        let (min, minx) = score_bound(lo).ok_or("ERR min or max is not a float")?;
        let (max, maxx) = score_bound(hi).ok_or("ERR min or max is not a float")?;
        let Some(z) = read_as!(ctx, &a[1], ZSet) else {
            ctx.out.array(0);
            return Ok(());
        };
        let inside = |s: f64| (s > min || (!minx && s == min)) && (s < max || (!maxx && s == max));
        let it = z
            .order
            .iter()
            .filter(|(s, _)| inside(s.0))
            .map(|(s, m)| (s.0, m.clone()));
        let mut v: Vec<(f64, Blob)> = it.collect();
        if rev {
            v.reverse();
        }
        if let Some((off, cnt)) = limit {
            let off = usize::try_from(off).unwrap_or(usize::MAX);
            let cnt = usize::try_from(cnt).unwrap_or(usize::MAX);
            v = v.into_iter().skip(off).take(cnt).collect();
        }
        v
    } else {
        let (s, e) = (int(a[2])?, int(a[3])?);
        let Some(z) = read_as!(ctx, &a[1], ZSet) else {
            ctx.out.array(0);
            return Ok(());
        };
        let len = z.len();
        match range(s, e, len) {
            Some((s, e)) => {
                // With REV the ranks count from the highest score.
                let (skip, take) = (s, e - s + 1);
                let collect = |it: &mut dyn Iterator<Item = &(Score, Blob)>| {
                    it.skip(skip)
                        .take(take)
                        .map(|(sc, m)| (sc.0, m.clone()))
                        .collect()
                };
                if rev {
                    collect(&mut z.order.iter().rev())
                } else {
                    collect(&mut z.order.iter())
                }
            }
            None => Vec::new(),
        }
    };
    ctx.out.array(items.len() * if scores { 2 } else { 1 });
    for (s, m) in items {
        ctx.out.bulk(&m);
        if scores {
            ctx.out.double(s);
        }
    }
    Ok(())
}

pub(super) fn zscore(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    match read_as!(ctx, &a[1], ZSet).and_then(|z| z.scores.get(a[2]).copied()) {
        Some(s) => ctx.out.double(s),
        None => ctx.out.null(),
    }
    Ok(())
}

pub(super) fn zcard(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = read_as!(ctx, &a[1], ZSet).map_or(0, |z| z.len());
    ctx.out.int(n as i64);
    Ok(())
}
