//! Transactions, as Redis's `multi.c`: MULTI, EXEC, DISCARD (queueing itself is in
//! [`super::execute`]).

use super::{lookup, run, with_borrowed, Ctx, Res};

pub(super) fn multi(ctx: &mut Ctx, _: &[&[u8]]) -> Res {
    if ctx.cl.multi.is_some() {
        return Err("ERR MULTI calls can not be nested".into());
    }
    ctx.cl.multi = Some(Vec::new());
    ctx.cl.multi_failed = false;
    ctx.out.ok();
    Ok(())
}

pub(super) fn discard(ctx: &mut Ctx, _: &[&[u8]]) -> Res {
    if ctx.cl.multi.take().is_none() {
        return Err("ERR DISCARD without MULTI".into());
    }
    ctx.out.ok();
    Ok(())
}

pub(super) fn exec(ctx: &mut Ctx, _: &[&[u8]]) -> Res {
    let Some(queue) = ctx.cl.multi.take() else {
        return Err("ERR EXEC without MULTI".into());
    };
    if std::mem::take(&mut ctx.cl.multi_failed) {
        return Err("EXECABORT Transaction discarded because of previous errors.".into());
    }
    ctx.out.array(queue.len());
    // The transaction's writes reach the replicas together, inside MULTI/EXEC.
    let outer = ctx.srv.tx_propagate.replace(Vec::new());
    for argv in queue {
        if let Some(cmd) = lookup(&argv[0]) {
            with_borrowed(argv.iter().map(|a| &a[..]), argv.len(), |args| {
                run(ctx.srv, ctx.cl, cmd, args, Some(&argv), ctx.out)
            });
        }
    }
    let writes = std::mem::replace(&mut ctx.srv.tx_propagate, outer).unwrap_or_default();
    if !writes.is_empty() {
        ctx.srv.node.propagate_transaction(&writes);
        ctx.srv.repl_dirty = true;
    }
    Ok(())
}
