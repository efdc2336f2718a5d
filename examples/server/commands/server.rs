//! Connection and server commands: PING, ECHO, QUIT, AUTH, SELECT, REPLICAOF, CLIENT and
//! CONFIG (INFO and ROLE are in `info.rs`, SAVE and BGSAVE in `persist.rs`).

use super::keyspace::glob;
use super::{eq, int, lossy, Ctx, Res, SYNTAX};

pub(super) fn ping(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    match a.len() {
        1 => ctx.out.simple("PONG"),
        2 => ctx.out.bulk(a[1]),
        _ => return Err("ERR wrong number of arguments for 'ping' command".into()),
    }
    Ok(())
}

pub(super) fn echo(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    ctx.out.bulk(a[1]);
    Ok(())
}

pub(super) fn quit(ctx: &mut Ctx, _: &[&[u8]]) -> Res {
    ctx.cl.close = true;
    ctx.out.ok();
    Ok(())
}

pub(super) fn auth(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let (user, pass) = match a.len() {
        2 => (&b"default"[..], &a[1]),
        3 => (a[1], &a[2]),
        _ => return Err(SYNTAX.into()),
    };
    let Some(want) = ctx.srv.cfg.requirepass.clone() else {
        if a.len() == 2 {
            return Err(
                "ERR AUTH <password> called without any password configured for the \
                        default user. Are you sure your configuration is correct?"
                    .into(),
            );
        }
        return Err("WRONGPASS invalid username-password pair or user is disabled.".into());
    };
    if user == b"default" && pass[..] == *want.as_bytes() {
        ctx.cl.authed = true;
        ctx.out.ok();
        Ok(())
    } else {
        Err("WRONGPASS invalid username-password pair or user is disabled.".into())
    }
}

pub(super) fn select(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let n = int(a[1])?;
    if n < 0 || n as usize >= ctx.srv.store.dbs.len() {
        return Err("ERR DB index is out of range".into());
    }
    ctx.cl.db = n as usize;
    ctx.out.ok();
    Ok(())
}

pub(super) fn replicaof(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    if ctx.cl.replica_link {
        return Err("ERR Command is not valid when client is a replica.".into());
    }
    if ctx.srv.node.writes_paused() {
        return Err("ERR REPLICAOF not allowed while failing over.".into());
    }
    if eq(a[1], "no") && eq(a[2], "one") {
        if ctx.srv.is_replica() {
            crate::log!("MASTER MODE enabled (user request)");
            ctx.srv.stop_replicating();
        }
        ctx.out.ok();
        return Ok(());
    }
    let respsync::commands::ReplicaOf::Master { host, port } =
        respsync::commands::parse_replicaof(a[1], a[2])?
    else {
        return Ok(());
    };
    if let Some(u) = &ctx.srv.upstream {
        if u.host == host && u.port == port {
            ctx.out.simple("OK Already connected to specified master");
            return Ok(());
        }
    }
    crate::log!("REPLICAOF {host}:{port} enabled (user request)");
    ctx.srv.replicate(host, port);
    ctx.out.ok();
    Ok(())
}

pub(super) fn client(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let sub = a[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"id" if a.len() == 2 => ctx.out.int(ctx.cl.id as i64),
        b"setname" if a.len() == 3 => {
            if a[2].iter().any(|c| *c <= b' ' || *c > b'~') {
                return Err(
                    "ERR Client names cannot contain spaces, newlines or special characters."
                        .into(),
                );
            }
            ctx.cl.name = a[2].to_vec();
            ctx.out.ok();
        }
        b"getname" if a.len() == 2 => {
            if ctx.cl.name.is_empty() {
                ctx.out.null();
            } else {
                let n = ctx.cl.name.clone();
                ctx.out.bulk(&n);
            }
        }
        b"kill" if a.len() == 4 && eq(a[2], "type") => {
            let t = a[3].to_ascii_lowercase();
            let n = match t.as_slice() {
                b"master" => ctx
                    .srv
                    .upstream
                    .as_mut()
                    .map_or(0, |u| u.kill_link() as i64),
                b"replica" | b"slave" => {
                    let links: Vec<u64> = ctx.srv.node.replicas().map(|r| r.link().0).collect();
                    for id in &links {
                        if let Some(c) = ctx.srv.clients.get(id) {
                            let _ = c.sock.shutdown(std::net::Shutdown::Both);
                        }
                    }
                    links.len() as i64
                }
                // No pub/sub clients here.
                b"pubsub" => 0,
                b"normal" => {
                    let me = ctx.cl.id;
                    let mut n = 0;
                    for (id, c) in &ctx.srv.clients {
                        if *id != me {
                            let _ = c.sock.shutdown(std::net::Shutdown::Both);
                        }
                        n += 1;
                    }
                    if ctx.srv.clients.contains_key(&me) {
                        ctx.cl.close = true;
                    }
                    n
                }
                _ => return Err(format!("ERR Unknown client type '{}'", lossy(a[3])).into()),
            };
            ctx.out.int(n);
        }
        _ => {
            return Err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                lossy(a[1])
            )
            .into())
        }
    }
    Ok(())
}

pub(super) fn config(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    let sub = a[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"get" if a.len() >= 3 => {
            let mut pairs: Vec<(&str, String)> = Vec::new();
            for p in &a[2..] {
                let p = String::from_utf8_lossy(p).to_ascii_lowercase();
                for name in crate::app::config::NAMES {
                    if glob(p.as_bytes(), name.as_bytes()) && !pairs.iter().any(|(n, _)| n == name)
                    {
                        pairs.extend(ctx.srv.cfg.value(name).map(|v| (*name, v)));
                    }
                }
            }
            ctx.out.array(pairs.len() * 2);
            for (n, v) in pairs {
                ctx.out.bulk(n.as_bytes());
                ctx.out.bulk(v.as_bytes());
            }
        }
        b"set" if a.len() >= 4 && a.len().is_multiple_of(2) => {
            let mut cfg = ctx.srv.cfg.clone();
            for kv in a[2..].chunks_exact(2) {
                let name = String::from_utf8_lossy(kv[0]).into_owned();
                if !crate::app::config::Config::knows(&name)
                    || name.eq_ignore_ascii_case("replicaof")
                {
                    return Err(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                    )
                    .into());
                }
                let v = String::from_utf8_lossy(kv[1]).into_owned();
                cfg.set(&name, &[v], false).map_err(|e| {
                    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {e}")
                })?;
            }
            ctx.srv.cfg = cfg;
            ctx.srv.apply_repl_config();
            ctx.out.ok();
        }
        b"resetstat" if a.len() == 2 => {
            ctx.srv.stats = Default::default();
            ctx.out.ok();
        }
        _ => {
            return Err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
                lossy(a[1])
            )
            .into())
        }
    }
    Ok(())
}

/// REPLCONF, PSYNC and SYNC: the crate's `Node` answers, or takes the connection over as a
/// replica link.
pub(super) fn replication(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    use respsync::node::{Caller, Handled};
    let caller = Caller {
        authenticated: ctx.cl.authed,
        in_multi: ctx.cl.multi.is_some(),
        peer_ip: ctx
            .srv
            .clients
            .get(&ctx.cl.id)
            .map(|c| c.addr.ip().to_string()),
    };
    let link = crate::app::master::link(ctx.cl.id);
    match ctx
        .srv
        .node
        .handle_command(std::time::Instant::now(), link, &caller, a)
    {
        Handled::Reply(b) => ctx.out.raw(&b),
        Handled::ReplicaLink => {
            ctx.cl.replica_link = true;
            ctx.srv.repl_dirty = true;
        }
        _ => {}
    }
    Ok(())
}

/// WAIT numreplicas timeout: answered by the node now, or later (the client's thread blocks,
/// see `net.rs`).
pub(super) fn wait(ctx: &mut Ctx, a: &[&[u8]]) -> Res {
    use respsync::node::WaitOutcome;
    let (n, timeout) = respsync::commands::parse_wait(a[1], a[2])?;
    // Inside EXEC a client cannot block: it gets the count at once.
    let can_block = ctx.srv.tx_propagate.is_none();
    let woff = ctx.cl.woff;
    match ctx
        .srv
        .node
        .handle_wait(std::time::Instant::now(), woff, n, timeout, can_block)
    {
        Err(e) => return Err(format!("ERR {e}").into()),
        Ok(WaitOutcome::Ready(n)) => ctx.out.int(n as i64),
        Ok(WaitOutcome::Blocked(id)) => {
            ctx.cl.blocked_wait = Some(id);
            ctx.srv.repl_dirty = true; // the GETACK goes out with the next write to replicas
        }
    }
    Ok(())
}
