//! The command table, dispatch, and what every command shares (argument parsing, key access
//! with expiry). The commands themselves live in one module per data type, as Redis splits its
//! `t_*.c` files: [`string`], [`list`], [`hash`], [`set`], [`zset`], [`stream`], plus
//! [`keyspace`] (commands on keys of any type), [`server`] (connection and server commands) and
//! [`multi`] (transactions). `INFO`/`ROLE` are in `info.rs`, `SAVE`/`BGSAVE` in `persist.rs`.
//!
//! Clients enter through [`execute`] and the master's stream through [`execute_from_master`]
//! (a muted [`Out`] and a master [`Client`], arguments borrowed from the stream buffer); both
//! go through the same checks and handlers, so a replica applies writes exactly as a client
//! would.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use respsync::replica::CommandRef;

use crate::app::reply::Out;
use crate::app::server::{Client, Server};
use crate::app::store::{self, Db, Entry, FastBuild};

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INT: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const READONLY: &str = "READONLY You can't write against a read only replica.";
pub const NOAUTH: &str = "NOAUTH Authentication required.";

type Res = Result<(), Cow<'static, str>>;
/// A command's handler. Arguments are borrowed slices (the command name first): a replica
/// applying its master's stream hands slices of the stream buffer, with no reference count or
/// copy per argument; only a command that keeps an argument copies it.
type Handler = fn(&mut Ctx, &[&[u8]]) -> Res;

/// Command flags.
pub const WRITE: u8 = 1;
/// Allowed before AUTH.
const NOAUTH_OK: u8 = 2;
/// Not queued by MULTI (transaction control).
const TX: u8 = 4;
/// Refused inside MULTI.
const NO_MULTI: u8 = 8;

/// One row of the command table.
pub struct Command {
    pub name: &'static str,
    /// Redis arity: `n` exactly n words, `-n` at least n (the name counts).
    pub arity: i32,
    pub flags: u8,
    handler: Handler,
}

macro_rules! table {
    ($($name:literal $arity:literal $flags:expr => $h:path;)*) => {
        &[$(Command { name: $name, arity: $arity, flags: $flags, handler: $h }),*]
    };
}

/// The command table (design.md's list, plus the forms a Redis master propagates).
pub static COMMANDS: &[Command] = table! {
    "ping" -1 0 => server::ping;
    "echo" 2 0 => server::echo;
    "auth" -2 NOAUTH_OK => server::auth;
    "quit" -1 NOAUTH_OK => server::quit;
    "select" 2 0 => server::select;
    "info" -1 0 => crate::app::info::info;
    "role" 1 0 => crate::app::info::role;
    "replconf" -1 0 => server::replication;
    "psync" -3 NO_MULTI => server::replication;
    "sync" 1 NO_MULTI => server::replication;
    "failover" -1 NO_MULTI => server::replication;
    "wait" 3 0 => server::wait;
    "replicaof" 3 NO_MULTI => server::replicaof;
    "slaveof" 3 NO_MULTI => server::replicaof;
    "dbsize" 1 0 => keyspace::dbsize;
    "flushdb" -1 WRITE => keyspace::flushdb;
    "flushall" -1 WRITE => keyspace::flushall;
    "keys" 2 0 => keyspace::keys;
    "scan" -2 0 => keyspace::scan;
    "type" 2 0 => keyspace::type_;
    "del" -2 WRITE => keyspace::del;
    "unlink" -2 WRITE => keyspace::del;
    "exists" -2 0 => keyspace::exists;
    "expire" -3 WRITE => keyspace::expire;
    "pexpire" -3 WRITE => keyspace::expire;
    "expireat" -3 WRITE => keyspace::expire;
    "pexpireat" -3 WRITE => keyspace::expire;
    "ttl" 2 0 => keyspace::ttl;
    "pttl" 2 0 => keyspace::ttl;
    "persist" 2 WRITE => keyspace::persist;
    "get" 2 0 => string::get;
    "set" -3 WRITE => string::set;
    "setnx" 3 WRITE => string::setnx;
    "setex" 4 WRITE => string::setex;
    "psetex" 4 WRITE => string::setex;
    "getset" 3 WRITE => string::getset;
    "append" 3 WRITE => string::append;
    "incr" 2 WRITE => string::incr;
    "decr" 2 WRITE => string::incr;
    "incrby" 3 WRITE => string::incr;
    "decrby" 3 WRITE => string::incr;
    "mset" -3 WRITE => string::mset;
    "mget" -2 0 => string::mget;
    "strlen" 2 0 => string::strlen;
    "lpush" -3 WRITE => list::push;
    "rpush" -3 WRITE => list::push;
    "lpop" -2 WRITE => list::pop;
    "rpop" -2 WRITE => list::pop;
    "lrange" 4 0 => list::lrange;
    "llen" 2 0 => list::llen;
    "lindex" 3 0 => list::lindex;
    "sadd" -3 WRITE => set::sadd;
    "srem" -3 WRITE => set::srem;
    "smembers" 2 0 => set::smembers;
    "scard" 2 0 => set::scard;
    "sismember" 3 0 => set::sismember;
    "hset" -4 WRITE => hash::hset;
    "hmset" -4 WRITE => hash::hset;
    "hsetnx" 4 WRITE => hash::hsetnx;
    "hget" 3 0 => hash::hget;
    "hdel" -3 WRITE => hash::hdel;
    "hgetall" 2 0 => hash::hgetall;
    "hlen" 2 0 => hash::hlen;
    "hincrby" 4 WRITE => hash::hincrby;
    "hexists" 3 0 => hash::hexists;
    "hexpire" -6 WRITE => hash::hexpire;
    "hpexpire" -6 WRITE => hash::hexpire;
    "hexpireat" -6 WRITE => hash::hexpire;
    "hpexpireat" -6 WRITE => hash::hexpire;
    "hpersist" -5 WRITE => hash::hpersist;
    "httl" -5 0 => hash::httl;
    "hpttl" -5 0 => hash::httl;
    "hexpiretime" -5 0 => hash::httl;
    "hpexpiretime" -5 0 => hash::httl;
    "hsetex" -6 WRITE => hash::hsetex;
    "hgetex" -5 WRITE => hash::hgetex;
    "hgetdel" -5 WRITE => hash::hgetdel;
    "zadd" -4 WRITE => zset::zadd;
    "zrem" -3 WRITE => zset::zrem;
    "zrange" -4 0 => zset::zrange;
    "zscore" 3 0 => zset::zscore;
    "zcard" 2 0 => zset::zcard;
    "xadd" -5 WRITE => stream::xadd;
    "xrange" -4 0 => stream::xrange;
    "xlen" 2 0 => stream::xlen;
    "xdel" -3 WRITE => stream::xdel;
    "xgroup" -2 WRITE => stream::xgroup;
    "xreadgroup" -7 WRITE => stream::xreadgroup;
    "xack" -4 WRITE => stream::xack;
    "xclaim" -6 WRITE => stream::xclaim;
    "multi" 1 TX | NO_MULTI => multi::multi;
    "exec" 1 TX => multi::exec;
    "discard" 1 TX => multi::discard;
    "save" 1 NO_MULTI => crate::app::persist::save;
    "bgsave" -1 0 => crate::app::persist::save;
    "client" -2 0 => server::client;
    "config" -2 0 => server::config;
};

fn lookup(name: &[u8]) -> Option<&'static Command> {
    static INDEX: OnceLock<HashMap<&'static [u8], &'static Command, FastBuild>> = OnceLock::new();
    let index = INDEX.get_or_init(|| COMMANDS.iter().map(|c| (c.name.as_bytes(), c)).collect());
    if name.len() > 32 {
        return None;
    }
    let mut buf = [0u8; 32];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    index.get(&*lower).copied()
}

/// What a command execution needs: the server, the calling client, its reply sink and the time.
pub struct Ctx<'a> {
    pub srv: &'a mut Server,
    pub cl: &'a mut Client,
    pub out: &'a mut Out,
    /// Unix time in ms, fixed for the whole command (Redis's `mstime()` cache).
    pub now: i64,
    /// What the command propagates, when it decides it itself (the hash-field TTL commands:
    /// `HDEL`s of fields it expired, then its own rewritten form, if any). `None`: the command
    /// as [`crate::app::propagate::rewrite`] makes it, if it is a write that succeeded.
    pub propagate: Option<Vec<Vec<Bytes>>>,
}

fn unknown_command(argv: &[&[u8]]) -> String {
    let mut s = format!(
        "ERR unknown command '{}', with args beginning with: ",
        String::from_utf8_lossy(&argv[0][..argv[0].len().min(128)])
    );
    for a in argv[1..].iter().take(20) {
        s.push_str(&format!(
            "'{}' ",
            String::from_utf8_lossy(&a[..a.len().min(128)])
        ));
    }
    s
}

/// Runs one command for `cl`, writing its reply to `out`.
pub fn execute(srv: &mut Server, cl: &mut Client, argv: &[Bytes], out: &mut Out) {
    with_borrowed(argv.iter().map(|a| &a[..]), argv.len(), |args| {
        dispatch(srv, cl, args, Some(argv), out)
    });
}

/// Runs one command of the master's stream for the master client `cl`, its arguments
/// borrowed from the stream buffer. Returns false, running nothing, when this server does not
/// know the command (the caller applies its unknown-command policy).
pub fn execute_from_master(
    srv: &mut Server,
    cl: &mut Client,
    command: &CommandRef<'_>,
    out: &mut Out,
) -> bool {
    // Queued inside MULTI: kept as zero-copy slices of the stream until EXEC.
    let owned: Option<Vec<Bytes>> = cl
        .multi
        .is_some()
        .then(|| command.to_command().args_bytes().collect());
    with_borrowed(command.args(), command.argc(), |args| {
        let Some(cmd) = args.first().and_then(|n| lookup(n)) else {
            return false;
        };
        srv.stats.total_commands_processed += 1;
        dispatch_known(srv, cl, cmd, args, owned.as_deref(), out);
        true
    })
}

/// Calls `f` with the `argc` arguments of `args` as one slice, on the stack for the usual
/// short commands.
fn with_borrowed<'a, R>(
    args: impl Iterator<Item = &'a [u8]>,
    argc: usize,
    f: impl FnOnce(&[&[u8]]) -> R,
) -> R {
    const ON_STACK: usize = 16;
    if argc <= ON_STACK {
        let mut buf: [&[u8]; ON_STACK] = [&[]; ON_STACK];
        let mut n = 0;
        for (slot, a) in buf.iter_mut().zip(args) {
            *slot = a;
            n += 1;
        }
        f(&buf[..n])
    } else {
        f(&args.collect::<Vec<_>>())
    }
}

/// `owned`: the same arguments as `Bytes`, when the caller has them (a client's): a master
/// propagates from them without copying.
fn dispatch(
    srv: &mut Server,
    cl: &mut Client,
    argv: &[&[u8]],
    owned: Option<&[Bytes]>,
    out: &mut Out,
) {
    let Some(&name) = argv.first() else { return };
    srv.stats.total_commands_processed += 1;
    let Some(cmd) = lookup(name) else {
        if cl.multi.is_some() {
            cl.multi_failed = true;
        }
        return out.error(&unknown_command(argv));
    };
    dispatch_known(srv, cl, cmd, argv, owned, out);
}

/// Runs `cmd` (the command `argv` names) for `cl`, after the checks every caller needs.
fn dispatch_known(
    srv: &mut Server,
    cl: &mut Client,
    cmd: &'static Command,
    argv: &[&[u8]],
    owned: Option<&[Bytes]>,
    out: &mut Out,
) {
    let name = argv[0];
    if !cl.authed && cmd.flags & NOAUTH_OK == 0 {
        return out.error(NOAUTH);
    }
    let n = argv.len() as i32;
    if (cmd.arity > 0 && n != cmd.arity) || (cmd.arity < 0 && n < -cmd.arity) {
        if cl.multi.is_some() {
            cl.multi_failed = true;
        }
        return out.error(&format!(
            "ERR wrong number of arguments for '{}' command",
            cmd.name
        ));
    }
    if !cl.is_master && cmd.flags & WRITE != 0 && srv.node.writes_refused(std::time::Instant::now())
    {
        if cl.multi.is_some() {
            cl.multi_failed = true;
        }
        return out.error(respsync::commands::NOREPLICAS);
    }
    if !cl.is_master && cmd.flags & WRITE != 0 && srv.is_replica() && srv.cfg.replica_read_only {
        if cl.multi.is_some() {
            cl.multi_failed = true;
        }
        return out.error(READONLY);
    }
    if !cl.is_master
        && !srv.cfg.replica_serve_stale_data
        && srv
            .upstream
            .as_ref()
            .is_some_and(|u| u.state != crate::app::server::LinkState::Connected)
        && !respsync::commands::is_stale_ok(name)
    {
        if cl.multi.is_some() {
            cl.multi_failed = true;
        }
        return out.error(respsync::commands::MASTERDOWN);
    }
    if cl.multi.is_some() && cmd.flags & TX == 0 {
        if cmd.flags & NO_MULTI != 0 {
            cl.multi_failed = true;
            return out.error("ERR Command not allowed inside a transaction");
        }
        if let Some(q) = &mut cl.multi {
            q.push(owned.map_or_else(|| to_owned(argv), <[Bytes]>::to_vec));
        }
        return out.simple("QUEUED");
    }
    run(srv, cl, cmd, argv, owned, out);
    cl.woff = srv.node.offset();
}

/// Owned copies of borrowed arguments.
pub fn to_owned(argv: &[&[u8]]) -> Vec<Bytes> {
    argv.iter().map(|a| Bytes::copy_from_slice(a)).collect()
}

/// Whether `argv` is a write this server knows (writes wait while a FAILOVER is in progress).
pub fn is_write(argv: &[Bytes]) -> bool {
    argv.first()
        .and_then(|n| lookup(n))
        .is_some_and(|c| c.flags & WRITE != 0)
}

fn run(
    srv: &mut Server,
    cl: &mut Client,
    cmd: &Command,
    argv: &[&[u8]],
    owned: Option<&[Bytes]>,
    out: &mut Out,
) {
    // One clock read per batch when the caller fixed the time (a replica applying a burst of
    // its master's stream), else one per command, as Redis caches `mstime()` per call.
    let now = srv.batch_now.unwrap_or_else(store::now_ms);
    let mut ctx = Ctx {
        srv,
        cl,
        out,
        now,
        propagate: None,
    };
    let res = (cmd.handler)(&mut ctx, argv);
    let explicit = ctx.propagate.take();
    let db = ctx.cl.db;
    if let Err(e) = &res {
        ctx.out.error(e);
    } else if cmd.flags & WRITE != 0 {
        ctx.srv.dirty += 1;
    }
    if ctx.srv.is_replica() {
        return;
    }
    match explicit {
        Some(cmds) => crate::app::propagate::send(ctx.srv, db, cmds),
        None if res.is_ok() && cmd.flags & WRITE != 0 => {
            let copied;
            let owned = match owned {
                Some(o) => o,
                None => {
                    copied = to_owned(argv);
                    &copied
                }
            };
            let argv = crate::app::propagate::rewrite(&ctx.srv.store.dbs[db], owned, now);
            crate::app::master::propagate(ctx.srv, db, &argv);
        }
        None => {}
    }
}

fn lossy(b: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(b)
}

// ---------------------------------------------------------------------------------------------
// Argument parsing

/// Parses an integer exactly as Redis's `string2ll` does (no spaces, no `+`, no leading zeros).
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let (neg, digits) = match b[0] {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || neg) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn int(b: &[u8]) -> Result<i64, Cow<'static, str>> {
    parse_i64(b).ok_or(Cow::Borrowed(NOT_INT))
}

/// Parses a float the way Redis's `getDoubleFromObject`/`strtod` accepts it (inf allowed, no nan).
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        l if l.contains("nan") || l.contains("inf") => return None,
        _ => s.parse().ok()?,
    };
    Some(v)
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Resolves Redis-style inclusive `start..=stop` indexes (negative from the end) for a length.
fn range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let s = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let e = if stop < 0 {
        len + stop
    } else {
        stop.min(len - 1)
    };
    (s <= e && s < len).then_some((s as usize, e as usize))
}

// ---------------------------------------------------------------------------------------------
// Key access with expiry

impl Ctx<'_> {
    pub fn db(&mut self) -> &mut Db {
        &mut self.srv.store.dbs[self.cl.db]
    }

    /// Drops `key` if it is logically expired. On a master it is deleted (active or lazy expiry
    /// is the master's job); on a replica it only looks missing to clients, and the master's
    /// stream never sees keys expire (it sends the DEL itself).
    fn expire_if_needed(&mut self, key: &[u8]) -> bool {
        let now = self.now;
        let Some(e) = self.srv.store.dbs[self.cl.db].raw(key) else {
            return false;
        };
        if !store::is_expired(e, now) || self.cl.is_master {
            return false;
        }
        if !self.srv.is_replica() {
            self.db().remove(key);
            self.srv.stats.expired_keys += 1;
            let argv = [Bytes::from_static(b"DEL"), Bytes::copy_from_slice(key)];
            let db = self.cl.db;
            crate::app::master::propagate(self.srv, db, &argv);
        }
        true
    }

    /// Read access.
    pub fn read(&mut self, key: &[u8]) -> Option<&Entry> {
        if self.expire_if_needed(key) {
            self.srv.stats.keyspace_misses += 1;
            return None;
        }
        let db = &self.srv.store.dbs[self.cl.db];
        match db.raw(key) {
            Some(e) => {
                self.srv.stats.keyspace_hits += 1;
                Some(e)
            }
            None => {
                self.srv.stats.keyspace_misses += 1;
                None
            }
        }
    }

    /// Read access that also lends the reply sink, so a value can be replied without a copy.
    pub fn read_out(&mut self, key: &[u8]) -> (Option<&Entry>, &mut Out) {
        let found = self.read(key).is_some();
        let e = if found {
            self.srv.store.dbs[self.cl.db].raw(key)
        } else {
            None
        };
        (e, self.out)
    }

    /// Write access. The master's stream sees every key as alive.
    pub fn write(&mut self, key: &[u8]) -> Option<&mut Entry> {
        if self.expire_if_needed(key) {
            return None;
        }
        self.srv.store.dbs[self.cl.db].get_mut(key, i64::MIN)
    }

    fn exists(&mut self, key: &[u8]) -> bool {
        !self.expire_if_needed(key) && self.srv.store.dbs[self.cl.db].raw(key).is_some()
    }

    /// Deletes `key` if its aggregate became empty.
    fn drop_if_empty(&mut self, key: &[u8]) {
        if self
            .db()
            .raw(key)
            .is_some_and(|e| e.value.is_empty_aggregate())
        {
            self.db().remove(key);
        }
    }
}

/// Looks a key up with `$ctx.$access($key)` (`read` or `write`) and expects one value type:
/// `None` when missing, `WRONGTYPE` when the key holds another type.
macro_rules! typed_as {
    ($ctx:expr, $access:ident, $key:expr, $variant:ident) => {
        match $ctx.$access($key) {
            None => None,
            Some($crate::app::store::Entry {
                value: $crate::app::store::Value::$variant(v),
                ..
            }) => Some(v),
            Some(_) => return Err($crate::app::commands::WRONGTYPE.into()),
        }
    };
}

macro_rules! read_as {
    ($ctx:expr, $key:expr, $variant:ident) => {
        typed_as!($ctx, read, $key, $variant)
    };
}

macro_rules! write_as {
    ($ctx:expr, $key:expr, $variant:ident) => {
        typed_as!($ctx, write, $key, $variant)
    };
}

/// Gets an aggregate for writing, creating it empty when missing.
macro_rules! write_or_create {
    ($ctx:expr, $key:expr, $variant:ident, $new:expr) => {{
        let exists = match $ctx.write($key) {
            None => false,
            Some($crate::app::store::Entry {
                value: $crate::app::store::Value::$variant(_),
                ..
            }) => true,
            Some(_) => return Err($crate::app::commands::WRONGTYPE.into()),
        };
        if !exists {
            $ctx.db()
                .set($key, $crate::app::store::Value::$variant($new), None);
        }
        match $ctx.db().get_mut($key, i64::MIN) {
            Some($crate::app::store::Entry {
                value: $crate::app::store::Value::$variant(v),
                ..
            }) => v,
            _ => unreachable!("just inserted with this type"),
        }
    }};
}

// The commands, one module per data type. (Declared after the macros above, which they use.)
mod hash;
mod keyspace;
mod list;
mod multi;
mod server;
mod set;
mod stream;
mod string;
mod zset;

#[cfg(test)]
mod tests {
    use super::keyspace::glob;
    use super::*;
    use crate::app::config::Config;

    fn run_all(srv: &mut Server, cl: &mut Client, cmds: &[&str]) -> String {
        let mut out = Out::new();
        for c in cmds {
            let argv: Vec<Bytes> = c
                .split(' ')
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            execute(srv, cl, &argv, &mut out);
        }
        String::from_utf8_lossy(&out.take()).into_owned()
    }

    fn fresh() -> (Server, Client) {
        (Server::new(Config::default()), Client::new(1, true))
    }

    #[test]
    fn integers_parse_like_redis() {
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"0"), Some(0));
        for bad in [
            &b"+1"[..],
            b"01",
            b"-0",
            b" 1",
            b"",
            b"-",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_i64(bad), None, "{:?}", bad);
        }
    }

    #[test]
    fn glob_patterns() {
        assert!(glob(b"*", b"abc"));
        assert!(glob(b"a?c", b"abc"));
        assert!(glob(b"a[b-c]c", b"acc"));
        assert!(!glob(b"a[^b]c", b"abc"));
        assert!(glob(b"h\\*llo", b"h*llo"));
        assert!(!glob(b"repl-*", b"port"));
        assert!(glob(b"repl-*", b"repl-timeout"));
    }

    #[test]
    fn errors_match_redis() {
        let (mut s, mut c) = fresh();
        assert_eq!(
            run_all(&mut s, &mut c, &["get"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert_eq!(
            run_all(&mut s, &mut c, &["foo a b"]),
            "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n"
        );
        assert_eq!(
            run_all(&mut s, &mut c, &["set k v", "lpush k a"]),
            format!("+OK\r\n-{WRONGTYPE}\r\n")
        );
        assert_eq!(
            run_all(&mut s, &mut c, &["incr k"]),
            format!("-{NOT_INT}\r\n")
        );
        assert_eq!(
            run_all(&mut s, &mut c, &["set k v ex 0"]),
            "-ERR invalid expire time in 'set' command\r\n"
        );
        assert_eq!(
            run_all(&mut s, &mut c, &["select 16"]),
            "-ERR DB index is out of range\r\n"
        );
    }

    #[test]
    fn transactions() {
        let (mut s, mut c) = fresh();
        let r = run_all(&mut s, &mut c, &["multi", "set a 1", "incr a", "exec"]);
        assert_eq!(r, "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n");
        let r = run_all(&mut s, &mut c, &["multi", "set a", "exec"]);
        assert!(
            r.ends_with("-EXECABORT Transaction discarded because of previous errors.\r\n"),
            "{r}"
        );
        assert_eq!(
            run_all(&mut s, &mut c, &["exec"]),
            "-ERR EXEC without MULTI\r\n"
        );
    }

    #[test]
    fn readonly_replica_refuses_client_writes_but_not_master_stream() {
        let (mut s, mut c) = fresh();
        s.replicate("127.0.0.1".into(), 1);
        assert_eq!(
            run_all(&mut s, &mut c, &["set a 1"]),
            format!("-{READONLY}\r\n")
        );
        let mut m = Client::master();
        let mut muted = Out::muted();
        let argv: Vec<Bytes> = ["set", "a", "1"]
            .iter()
            .map(|w| Bytes::from_static(w.as_bytes()))
            .collect();
        execute(&mut s, &mut m, &argv, &mut muted);
        assert!(muted.is_empty());
        assert_eq!(run_all(&mut s, &mut c, &["get a"]), "$1\r\n1\r\n");
    }

    #[test]
    fn expiry_is_lazy_on_master_and_hidden_on_replica() {
        let (mut s, mut c) = fresh();
        run_all(&mut s, &mut c, &["set a 1 px 1"]);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(
            run_all(&mut s, &mut c, &["get a", "dbsize"]),
            "$-1\r\n:0\r\n"
        );
    }

    #[test]
    fn sorted_sets_and_streams() {
        let (mut s, mut c) = fresh();
        let r = run_all(
            &mut s,
            &mut c,
            &["zadd z 1.1 m 3 n", "zrange z 0 -1 withscores", "zscore z m"],
        );
        assert_eq!(r, ":2\r\n*4\r\n$1\r\nm\r\n$18\r\n1.1000000000000001\r\n$1\r\nn\r\n$1\r\n3\r\n$18\r\n1.1000000000000001\r\n");
        let r = run_all(
            &mut s,
            &mut c,
            &[
                "xadd s 1-1 a b",
                "xadd s 1-1 a b",
                "xgroup create s g 0",
                "xreadgroup group g c streams s >",
                "xlen s",
            ],
        );
        assert_eq!(r, "$3\r\n1-1\r\n-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n+OK\r\n*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n:1\r\n");
    }

    #[test]
    fn config_get_set() {
        let (mut s, mut c) = fresh();
        let r = run_all(
            &mut s,
            &mut c,
            &[
                "config set repl-backlog-size 2x",
                "config set foo 1",
                "config get repl-backlog-size",
            ],
        );
        assert_eq!(r, "-ERR CONFIG SET failed (possibly related to argument 'repl-backlog-size') - argument must be a memory value\r\n-ERR Unknown option or number of arguments for CONFIG SET - 'foo'\r\n*2\r\n$17\r\nrepl-backlog-size\r\n$7\r\n1048576\r\n");
    }
}
