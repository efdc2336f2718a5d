//! The command table and every command's implementation.
//!
//! [`execute`] is the single entry point for clients *and* for the master's stream (which uses a
//! muted [`Out`] and a master [`Client`]), so a replica applies writes exactly as a client would.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;

use bytes::Bytes;

use crate::reply::Out;
use crate::server::{Client, Server};
use crate::store::{
    self, Blob, Consumer, Db, Entry, FastBuild, Group, Pending, Score, Stream, StreamId, Value,
};

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INT: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const READONLY: &str = "READONLY You can't write against a read only replica.";
pub const NOAUTH: &str = "NOAUTH Authentication required.";

type Res = Result<(), Cow<'static, str>>;
type Handler = fn(&mut Ctx, &[Bytes]) -> Res;

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
    "ping" -1 0 => ping;
    "echo" 2 0 => echo;
    "auth" -2 NOAUTH_OK => auth;
    "quit" -1 NOAUTH_OK => quit;
    "select" 2 0 => select;
    "info" -1 0 => crate::info::info;
    "role" 1 0 => crate::info::role;
    "replicaof" 3 NO_MULTI => replicaof;
    "slaveof" 3 NO_MULTI => replicaof;
    "dbsize" 1 0 => dbsize;
    "flushdb" -1 WRITE => flushdb;
    "flushall" -1 WRITE => flushall;
    "keys" 2 0 => keys;
    "scan" -2 0 => scan;
    "type" 2 0 => type_;
    "del" -2 WRITE => del;
    "unlink" -2 WRITE => del;
    "exists" -2 0 => exists;
    "expire" -3 WRITE => expire;
    "pexpire" -3 WRITE => expire;
    "expireat" -3 WRITE => expire;
    "pexpireat" -3 WRITE => expire;
    "ttl" 2 0 => ttl;
    "pttl" 2 0 => ttl;
    "persist" 2 WRITE => persist;
    "get" 2 0 => get;
    "set" -3 WRITE => set;
    "setnx" 3 WRITE => setnx;
    "setex" 4 WRITE => setex;
    "psetex" 4 WRITE => setex;
    "getset" 3 WRITE => getset;
    "append" 3 WRITE => append;
    "incr" 2 WRITE => incr;
    "decr" 2 WRITE => incr;
    "incrby" 3 WRITE => incr;
    "decrby" 3 WRITE => incr;
    "mset" -3 WRITE => mset;
    "mget" -2 0 => mget;
    "strlen" 2 0 => strlen;
    "lpush" -3 WRITE => push;
    "rpush" -3 WRITE => push;
    "lpop" -2 WRITE => pop;
    "rpop" -2 WRITE => pop;
    "lrange" 4 0 => lrange;
    "llen" 2 0 => llen;
    "lindex" 3 0 => lindex;
    "sadd" -3 WRITE => sadd;
    "srem" -3 WRITE => srem;
    "smembers" 2 0 => smembers;
    "scard" 2 0 => scard;
    "sismember" 3 0 => sismember;
    "hset" -4 WRITE => hset;
    "hmset" -4 WRITE => hset;
    "hsetnx" 4 WRITE => hsetnx;
    "hget" 3 0 => hget;
    "hdel" -3 WRITE => hdel;
    "hgetall" 2 0 => hgetall;
    "hlen" 2 0 => hlen;
    "hincrby" 4 WRITE => hincrby;
    "zadd" -4 WRITE => zadd;
    "zrem" -3 WRITE => zrem;
    "zrange" -4 0 => zrange;
    "zscore" 3 0 => zscore;
    "zcard" 2 0 => zcard;
    "xadd" -5 WRITE => xadd;
    "xrange" -4 0 => xrange;
    "xlen" 2 0 => xlen;
    "xdel" -3 WRITE => xdel;
    "xgroup" -2 WRITE => xgroup;
    "xreadgroup" -7 WRITE => xreadgroup;
    "xack" -4 WRITE => xack;
    "xclaim" -6 WRITE => xclaim;
    "multi" 1 TX | NO_MULTI => multi;
    "exec" 1 TX => exec;
    "discard" 1 TX => discard;
    "save" 1 NO_MULTI => crate::persist::save;
    "bgsave" -1 0 => crate::persist::save;
    "client" -2 0 => client;
    "config" -2 0 => config;
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
}

fn unknown_command(argv: &[Bytes]) -> String {
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
    let Some(name) = argv.first() else { return };
    srv.stats.total_commands_processed += 1;
    let Some(cmd) = lookup(name) else {
        if cl.multi.is_some() {
            cl.multi_failed = true;
        }
        if cl.is_master {
            eprintln!(
                "replication: ignoring unknown command from master: {}",
                lossy(name)
            );
        }
        return out.error(&unknown_command(argv));
    };
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
    if !cl.is_master && cmd.flags & WRITE != 0 && srv.is_replica() && srv.cfg.replica_read_only {
        if cl.multi.is_some() {
            cl.multi_failed = true;
        }
        return out.error(READONLY);
    }
    if cl.multi.is_some() && cmd.flags & TX == 0 {
        if cmd.flags & NO_MULTI != 0 {
            cl.multi_failed = true;
            return out.error("ERR Command not allowed inside a transaction");
        }
        if let Some(q) = &mut cl.multi {
            q.push(argv.to_vec());
        }
        return out.simple("QUEUED");
    }
    run(srv, cl, cmd, argv, out);
}

fn run(srv: &mut Server, cl: &mut Client, cmd: &Command, argv: &[Bytes], out: &mut Out) {
    let now = store::now_ms();
    let mut ctx = Ctx { srv, cl, out, now };
    if let Err(e) = (cmd.handler)(&mut ctx, argv) {
        ctx.out.error(&e);
    } else if cmd.flags & WRITE != 0 {
        ctx.srv.dirty += 1;
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
            Some(Entry {
                value: Value::$variant(v),
                ..
            }) => Some(v),
            Some(_) => return Err(WRONGTYPE.into()),
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
            Some(Entry {
                value: Value::$variant(_),
                ..
            }) => true,
            Some(_) => return Err(WRONGTYPE.into()),
        };
        if !exists {
            $ctx.db().set($key, Value::$variant($new), None);
        }
        match $ctx.db().get_mut($key, i64::MIN) {
            Some(Entry {
                value: Value::$variant(v),
                ..
            }) => v,
            _ => unreachable!("just inserted with this type"),
        }
    }};
}

// ---------------------------------------------------------------------------------------------
// Connection and server commands

fn ping(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    match a.len() {
        1 => ctx.out.simple("PONG"),
        2 => ctx.out.bulk(&a[1]),
        _ => return Err("ERR wrong number of arguments for 'ping' command".into()),
    }
    Ok(())
}

fn echo(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    ctx.out.bulk(&a[1]);
    Ok(())
}

fn quit(ctx: &mut Ctx, _: &[Bytes]) -> Res {
    ctx.cl.close = true;
    ctx.out.ok();
    Ok(())
}

fn auth(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let (user, pass) = match a.len() {
        2 => (&b"default"[..], &a[1]),
        3 => (&a[1][..], &a[2]),
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

fn select(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = int(&a[1])?;
    if n < 0 || n as usize >= ctx.srv.store.dbs.len() {
        return Err("ERR DB index is out of range".into());
    }
    ctx.cl.db = n as usize;
    ctx.out.ok();
    Ok(())
}

fn replicaof(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    if eq(&a[1], "no") && eq(&a[2], "one") {
        if ctx.srv.is_replica() {
            eprintln!("MASTER MODE enabled (user request)");
            ctx.srv.stop_replicating();
        }
        ctx.out.ok();
        return Ok(());
    }
    let host = String::from_utf8_lossy(&a[1]).into_owned();
    let port = parse_i64(&a[2])
        .filter(|p| (0..=65535).contains(p))
        .ok_or(NOT_INT)? as u16;
    if let Some(u) = &ctx.srv.upstream {
        if u.host == host && u.port == port {
            ctx.out.simple("OK Already connected to specified master");
            return Ok(());
        }
    }
    eprintln!("REPLICAOF {host}:{port} enabled (user request)");
    ctx.srv.replicate(host, port);
    ctx.out.ok();
    Ok(())
}

fn dbsize(ctx: &mut Ctx, _: &[Bytes]) -> Res {
    let n = ctx.db().len();
    ctx.out.int(n as i64);
    Ok(())
}

fn flush_mode(a: &[Bytes]) -> Res {
    match a.get(1) {
        None => Ok(()),
        Some(m) if a.len() == 2 && (eq(m, "async") || eq(m, "sync")) => Ok(()),
        Some(_) => Err(SYNTAX.into()),
    }
}

fn flushdb(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    flush_mode(a)?;
    ctx.db().clear();
    ctx.out.ok();
    Ok(())
}

fn flushall(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    flush_mode(a)?;
    ctx.srv.store.flush_all();
    ctx.out.ok();
    Ok(())
}

/// Glob-style matching as Redis's `stringmatchlen` (`*`, `?`, `[...]` with `^` and ranges, `\`).
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    fn m(p: &[u8], s: &[u8], depth: u32) -> bool {
        if depth > 1000 {
            return false;
        }
        let (mut pi, mut si) = (0, 0);
        while pi < p.len() {
            match p[pi] {
                b'*' => {
                    while pi + 1 < p.len() && p[pi + 1] == b'*' {
                        pi += 1;
                    }
                    if pi + 1 == p.len() {
                        return true;
                    }
                    return (si..=s.len()).any(|k| m(&p[pi + 1..], &s[k..], depth + 1));
                }
                b'?' => {
                    if si >= s.len() {
                        return false;
                    }
                    si += 1;
                }
                b'[' => {
                    if si >= s.len() {
                        return false;
                    }
                    pi += 1;
                    let not = p.get(pi) == Some(&b'^');
                    if not {
                        pi += 1;
                    }
                    let mut matched = false;
                    while pi < p.len() && p[pi] != b']' {
                        if p[pi] == b'\\' && pi + 1 < p.len() {
                            pi += 1;
                            matched |= p[pi] == s[si];
                        } else if pi + 2 < p.len() && p[pi + 1] == b'-' {
                            let (lo, hi) = (p[pi].min(p[pi + 2]), p[pi].max(p[pi + 2]));
                            matched |= (lo..=hi).contains(&s[si]);
                            pi += 2;
                        } else {
                            matched |= p[pi] == s[si];
                        }
                        pi += 1;
                    }
                    if matched == not {
                        return false;
                    }
                    si += 1;
                }
                c => {
                    let c = if c == b'\\' && pi + 1 < p.len() {
                        pi += 1;
                        p[pi]
                    } else {
                        c
                    };
                    if si >= s.len() || s[si] != c {
                        return false;
                    }
                    si += 1;
                }
            }
            pi += 1;
        }
        si == s.len()
    }
    m(p, s, 0)
}

fn keys(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let now = ctx.now;
    let hide_expired = !ctx.cl.is_master;
    let db = &ctx.srv.store.dbs[ctx.cl.db];
    let all = &a[1][..] == b"*";
    let found: Vec<&Blob> = db
        .iter()
        .filter(|(k, e)| (all || glob(&a[1], k)) && !(hide_expired && store::is_expired(e, now)))
        .map(|(k, _)| k)
        .collect();
    ctx.out.array(found.len());
    for k in found {
        ctx.out.bulk(k);
    }
    Ok(())
}

/// A stable 64-bit position for SCAN: keys are visited in order of this hash, and the cursor is
/// the last hash returned, so a key present for the whole scan is returned exactly once.
fn scan_hash(k: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(k);
    h.finish() | 1
}

fn scan(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let cursor = std::str::from_utf8(&a[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or("ERR invalid cursor")?;
    let (mut count, mut pattern, mut kind) = (10usize, None, None);
    let mut i = 2;
    while i < a.len() {
        if i + 1 >= a.len() {
            return Err(SYNTAX.into());
        }
        if eq(&a[i], "count") {
            let n = int(&a[i + 1])?;
            if n < 1 {
                return Err(SYNTAX.into());
            }
            count = n.min(1 << 20) as usize;
        } else if eq(&a[i], "match") {
            pattern = Some(a[i + 1].clone());
        } else if eq(&a[i], "type") {
            kind = Some(String::from_utf8_lossy(&a[i + 1]).to_ascii_lowercase());
        } else {
            return Err(SYNTAX.into());
        }
        i += 2;
    }
    let now = ctx.now;
    let db = &ctx.srv.store.dbs[ctx.cl.db];
    let mut batch: Vec<(u64, &Blob, &Entry)> = db
        .iter()
        .map(|(k, e)| (scan_hash(k), k, e))
        .filter(|(h, _, _)| *h > cursor)
        .collect();
    let next = if batch.len() > count {
        batch.select_nth_unstable_by_key(count - 1, |t| t.0);
        batch.truncate(count);
        batch.iter().map(|t| t.0).max().unwrap_or(0)
    } else {
        0
    };
    let found: Vec<&Blob> = batch
        .into_iter()
        .filter(|(_, k, e)| {
            !store::is_expired(e, now)
                && pattern.as_ref().is_none_or(|p| glob(p, k))
                && kind.as_deref().is_none_or(|t| e.value.type_name() == t)
        })
        .map(|t| t.1)
        .collect();
    ctx.out.array(2);
    ctx.out.bulk(next.to_string().as_bytes());
    ctx.out.array(found.len());
    for k in found {
        ctx.out.bulk(k);
    }
    Ok(())
}

fn type_(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let t = match ctx.read(&a[1]) {
        None => "none",
        Some(Entry {
            value: Value::Opaque(o),
            ..
        }) => {
            let name = o.type_name.clone();
            ctx.out.simple(&name);
            return Ok(());
        }
        Some(e) => e.value.type_name(),
    };
    ctx.out.simple(t);
    Ok(())
}

fn del(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let mut n = 0;
    for k in &a[1..] {
        if ctx.exists(k) {
            ctx.db().remove(k);
            n += 1;
        } else if ctx.cl.is_master {
            ctx.db().remove(k);
        }
    }
    ctx.out.int(n);
    Ok(())
}

fn exists(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let mut n = 0;
    for k in &a[1..] {
        if ctx.read(k).is_some() {
            n += 1;
        }
    }
    ctx.out.int(n);
    Ok(())
}

fn expire(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let name = a[0].to_ascii_lowercase();
    let v = int(&a[2])?;
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in &a[3..] {
        match o.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                return Err(format!("ERR Unsupported option {}", lossy(o)).into());
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    let when = match name.as_slice() {
        b"expire" => v.checked_mul(1000).and_then(|ms| ms.checked_add(ctx.now)),
        b"pexpire" => v.checked_add(ctx.now),
        b"expireat" => v.checked_mul(1000),
        _ => Some(v),
    }
    .ok_or_else(|| format!("ERR invalid expire time in '{}' command", lossy(&name)))?;
    let Some(e) = ctx.write(&a[1]) else {
        ctx.out.int(0);
        return Ok(());
    };
    let cur = e.expire;
    let ok = match cur {
        None => !xx && !gt,
        Some(c) => !nx && (!gt || when > c) && (!lt || when < c),
    };
    if !ok {
        ctx.out.int(0);
        return Ok(());
    }
    if when <= ctx.now && !ctx.srv.is_replica() && !ctx.cl.is_master {
        ctx.db().remove(&a[1]);
    } else {
        ctx.db().set_expire(&a[1], Some(when));
    }
    ctx.out.int(1);
    Ok(())
}

fn ttl(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let ms = a[0].eq_ignore_ascii_case(b"pttl");
    let now = ctx.now;
    let r = match ctx.read(&a[1]) {
        None => -2,
        Some(Entry { expire: None, .. }) => -1,
        Some(Entry {
            expire: Some(t), ..
        }) => {
            let left = (t - now).max(0);
            if ms {
                left
            } else {
                (left + 500) / 1000
            }
        }
    };
    ctx.out.int(r);
    Ok(())
}

fn persist(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let had = matches!(
        ctx.write(&a[1]),
        Some(Entry {
            expire: Some(_),
            ..
        })
    );
    if had {
        ctx.db().set_expire(&a[1], None);
    }
    ctx.out.int(had as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Strings

fn get(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let (e, out) = ctx.read_out(&a[1]);
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

fn set(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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
                let v = int(&a[i + 1])?;
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
        ctx.db().set(&a[1], Value::Str(a[2][..].into()), expire);
        ctx.out.ok();
        return Ok(());
    }
    let old = ctx.write(&a[1]).map(|e| (e.value.clone_if_str(), e.expire));
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
    ctx.db().set(&a[1], Value::Str(a[2][..].into()), ttl);
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

fn setnx(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    if ctx.exists(&a[1]) {
        ctx.out.int(0);
    } else {
        ctx.db().set(&a[1], Value::Str(a[2][..].into()), None);
        ctx.out.int(1);
    }
    Ok(())
}

fn setex(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let v = int(&a[2])?;
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
    ctx.exists(&a[1]);
    ctx.db().set(&a[1], Value::Str(a[3][..].into()), Some(at));
    ctx.out.ok();
    Ok(())
}

fn getset(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    match ctx.write(&a[1]) {
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
    ctx.db().set(&a[1], Value::Str(a[2][..].into()), None);
    Ok(())
}

fn append(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let len = match write_as!(ctx, &a[1], Str) {
        Some(s) => {
            let mut v = std::mem::take(s).into_vec();
            v.extend_from_slice(&a[2]);
            let len = v.len();
            *s = v.into_boxed_slice();
            len
        }
        None => {
            ctx.db().set(&a[1], Value::Str(a[2][..].into()), None);
            a[2].len()
        }
    };
    ctx.out.int(len as i64);
    Ok(())
}

fn incr(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let name = a[0].to_ascii_lowercase();
    let by = match name.as_slice() {
        b"incr" => 1,
        b"decr" => -1,
        b"incrby" => int(&a[2])?,
        _ => int(&a[2])?
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
    match ctx.write(&a[1]) {
        Some(e) => e.value = Value::Str(new),
        None => ctx.db().set(&a[1], Value::Str(new), None),
    }
    ctx.out.int(n);
    Ok(())
}

fn mset(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    if a.len().is_multiple_of(2) {
        return Err("ERR wrong number of arguments for 'mset' command".into());
    }
    for kv in a[1..].chunks_exact(2) {
        ctx.exists(&kv[0]);
        ctx.db().set(&kv[0], Value::Str(kv[1][..].into()), None);
    }
    ctx.out.ok();
    Ok(())
}

fn mget(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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

fn strlen(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = read_as!(ctx, &a[1], Str).map_or(0, |s| s.len());
    ctx.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Lists

fn push(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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

fn pop(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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
    ctx.drop_if_empty(&a[1]);
    Ok(())
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

fn lrange(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let (s, e) = (int(&a[2])?, int(&a[3])?);
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

fn llen(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = read_as!(ctx, &a[1], List).map_or(0, |l| l.len());
    ctx.out.int(n as i64);
    Ok(())
}

fn lindex(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let i = int(&a[2])?;
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

// ---------------------------------------------------------------------------------------------
// Sets

fn sadd(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let s = write_or_create!(ctx, &a[1], Set, Box::default());
    let n = a[2..].iter().filter(|m| s.insert(m[..].into())).count();
    ctx.out.int(n as i64);
    Ok(())
}

fn srem(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = match write_as!(ctx, &a[1], Set) {
        Some(s) => a[2..].iter().filter(|m| s.remove(&m[..])).count(),
        None => 0,
    };
    ctx.drop_if_empty(&a[1]);
    ctx.out.int(n as i64);
    Ok(())
}

fn smembers(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let items: Vec<Blob> = read_as!(ctx, &a[1], Set)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default();
    ctx.out.array(items.len());
    for v in items {
        ctx.out.bulk(&v);
    }
    Ok(())
}

fn scard(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = read_as!(ctx, &a[1], Set).map_or(0, |s| s.len());
    ctx.out.int(n as i64);
    Ok(())
}

fn sismember(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = read_as!(ctx, &a[1], Set).is_some_and(|s| s.contains(&a[2][..]));
    ctx.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Hashes

fn hset(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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

fn hsetnx(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let h = write_or_create!(ctx, &a[1], Hash, Box::default());
    let new = !h.contains_key(&a[2][..]);
    if new {
        h.insert(a[2][..].into(), a[3][..].into());
    }
    ctx.out.int(new as i64);
    Ok(())
}

fn hget(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    match read_as!(ctx, &a[1], Hash)
        .and_then(|h| h.get(&a[2][..]))
        .cloned()
    {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
    Ok(())
}

fn hdel(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = match write_as!(ctx, &a[1], Hash) {
        Some(h) => a[2..].iter().filter(|f| h.remove(&f[..]).is_some()).count(),
        None => 0,
    };
    ctx.drop_if_empty(&a[1]);
    ctx.out.int(n as i64);
    Ok(())
}

fn hgetall(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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

fn hlen(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = read_as!(ctx, &a[1], Hash).map_or(0, |h| h.len());
    ctx.out.int(n as i64);
    Ok(())
}

fn hincrby(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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

// ---------------------------------------------------------------------------------------------
// Sorted sets

fn zadd(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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
        pairs.push((parse_f64(&p[0]).ok_or(NOT_FLOAT)?, p[1].clone()));
    }
    if xx && ctx.read(&a[1]).is_none() {
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
        let cur = z.scores.get(&m[..]).copied();
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
        if z.insert(&m, new) {
            added += 1;
        } else if cur != Some(new) {
            changed += 1;
        }
    }
    ctx.drop_if_empty(&a[1]);
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

fn zrem(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = match write_as!(ctx, &a[1], ZSet) {
        Some(z) => a[2..].iter().filter(|m| z.remove(m)).count(),
        None => 0,
    };
    ctx.drop_if_empty(&a[1]);
    ctx.out.int(n as i64);
    Ok(())
}

fn score_bound(b: &[u8]) -> Option<(f64, bool)> {
    match b.strip_prefix(b"(") {
        Some(r) => parse_f64(r).map(|v| (v, true)),
        None => parse_f64(b).map(|v| (v, false)),
    }
}

fn zrange(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let (mut byscore, mut rev, mut scores, mut limit) = (false, false, false, None);
    let mut i = 4;
    while i < a.len() {
        match a[i].to_ascii_lowercase().as_slice() {
            b"byscore" => byscore = true,
            b"rev" => rev = true,
            b"withscores" => scores = true,
            b"limit" if i + 2 < a.len() => {
                limit = Some((int(&a[i + 1])?, int(&a[i + 2])?));
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
        let (s, e) = (int(&a[2])?, int(&a[3])?);
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

fn zscore(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    match read_as!(ctx, &a[1], ZSet).and_then(|z| z.scores.get(&a[2][..]).copied()) {
        Some(s) => ctx.out.double(s),
        None => ctx.out.null(),
    }
    Ok(())
}

fn zcard(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = read_as!(ctx, &a[1], ZSet).map_or(0, |z| z.len());
    ctx.out.int(n as i64);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Streams

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

fn xadd(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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
    let exists = match ctx.write(&a[1]) {
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
        ctx.db().set(&a[1], Value::Stream(Box::default()), None);
    }
    let now = ctx.now.max(0) as u64;
    let Some(Entry {
        value: Value::Stream(s),
        ..
    }) = ctx.db().get_mut(&a[1], i64::MIN)
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

fn xrange(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let start = range_bound(&a[2], true)?;
    let end = range_bound(&a[3], false)?;
    let count = match a.len() {
        4 => usize::MAX,
        6 if eq(&a[4], "count") => usize::try_from(int(&a[5])?).unwrap_or(0),
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

fn xlen(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let n = read_as!(ctx, &a[1], Stream).map_or(0, |s| s.entries.len());
    ctx.out.int(n as i64);
    Ok(())
}

fn xdel(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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

fn xgroup(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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
            lossy(&a[1])
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
        if eq(&a[i], "mkstream") && sub == b"create" {
            mkstream = true;
            i += 1;
        } else if eq(&a[i], "entriesread") && i + 1 < a.len() {
            entries_read = Some(int(&a[i + 1])?);
            i += 2;
        } else {
            return Err(SYNTAX.into());
        }
    }
    let exists = match ctx.write(&a[2]) {
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
        ctx.db().set(&a[2], Value::Stream(Box::default()), None);
    }
    let now = ctx.now;
    let Some(Entry {
        value: Value::Stream(s),
        ..
    }) = ctx.db().get_mut(&a[2], i64::MIN)
    else {
        unreachable!("the stream exists")
    };
    let name = &a[3][..];
    let gi = s.groups.iter().position(|g| &g.name[..] == name);
    let nogroup = || {
        Cow::from(format!(
            "NOGROUP No such key '{}' or consumer group '{}'",
            lossy(&a[2]),
            lossy(name)
        ))
    };
    match sub.as_slice() {
        b"create" => {
            if gi.is_some() {
                return Err("BUSYGROUP Consumer Group name already exists".into());
            }
            let last_id = group_id(s, &a[4])?;
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
            let id = group_id(s, &a[4])?;
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
            let created = consumer(g, &a[4], now).1;
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

fn xreadgroup(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    if !eq(&a[1], "group") {
        return Err(SYNTAX.into());
    }
    let (gname, cname) = (a[2].clone(), a[3].clone());
    let (mut count, mut noack) = (usize::MAX, false);
    let mut i = 4;
    while i < a.len() && !eq(&a[i], "streams") {
        if eq(&a[i], "count") && i + 1 < a.len() {
            count = usize::try_from(int(&a[i + 1])?).unwrap_or(0);
            if count == 0 {
                count = usize::MAX;
            }
            i += 2;
        } else if eq(&a[i], "block") && i + 1 < a.len() {
            int(&a[i + 1])?;
            i += 2;
        } else if eq(&a[i], "noack") {
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
                lossy(&gname)
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
        let (ci, _) = consumer(g, &cname, now);
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
        results.push((k.clone(), got));
    }
    if results.is_empty() {
        ctx.out.null_array();
        return Ok(());
    }
    ctx.out.array(results.len());
    for (k, got) in results {
        ctx.out.array(2);
        ctx.out.bulk(&k);
        reply_entries(ctx.out, &got);
    }
    Ok(())
}

fn xack(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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
fn xclaim(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let min_idle = int(&a[4])?;
    let mut ids = Vec::new();
    let mut i = 5;
    while i < a.len() {
        match StreamId::parse(&a[i], 0) {
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
            _ => return Err(format!("ERR Unrecognized XCLAIM option '{}'", lossy(&a[i])).into()),
        }
        i += 1;
    }
    let cname = a[3].clone();
    let Some(s) = write_as!(ctx, &a[1], Stream) else {
        return Err(format!(
            "NOGROUP No such key '{}' or consumer group '{}'",
            lossy(&a[1]),
            lossy(&a[2])
        )
        .into());
    };
    let Stream {
        entries, groups, ..
    } = &mut **s;
    let Some(g) = groups.iter_mut().find(|g| g.name[..] == a[2][..]) else {
        return Err(format!(
            "NOGROUP No such key '{}' or consumer group '{}'",
            lossy(&a[1]),
            lossy(&a[2])
        )
        .into());
    };
    if let Some(l) = lastid {
        if l > g.last_id {
            g.last_id = l;
        }
    }
    let (ci, _) = consumer(g, &cname, now);
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

// ---------------------------------------------------------------------------------------------
// Transactions

fn multi(ctx: &mut Ctx, _: &[Bytes]) -> Res {
    if ctx.cl.multi.is_some() {
        return Err("ERR MULTI calls can not be nested".into());
    }
    ctx.cl.multi = Some(Vec::new());
    ctx.cl.multi_failed = false;
    ctx.out.ok();
    Ok(())
}

fn discard(ctx: &mut Ctx, _: &[Bytes]) -> Res {
    if ctx.cl.multi.take().is_none() {
        return Err("ERR DISCARD without MULTI".into());
    }
    ctx.out.ok();
    Ok(())
}

fn exec(ctx: &mut Ctx, _: &[Bytes]) -> Res {
    let Some(queue) = ctx.cl.multi.take() else {
        return Err("ERR EXEC without MULTI".into());
    };
    if std::mem::take(&mut ctx.cl.multi_failed) {
        return Err("EXECABORT Transaction discarded because of previous errors.".into());
    }
    ctx.out.array(queue.len());
    for argv in queue {
        if let Some(cmd) = lookup(&argv[0]) {
            run(ctx.srv, ctx.cl, cmd, &argv, ctx.out);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// CLIENT and CONFIG

fn client(ctx: &mut Ctx, a: &[Bytes]) -> Res {
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
        b"kill" if a.len() == 4 && eq(&a[2], "type") => {
            let t = a[3].to_ascii_lowercase();
            let n = match t.as_slice() {
                b"master" => ctx
                    .srv
                    .upstream
                    .as_mut()
                    .map_or(0, |u| u.kill_link() as i64),
                // No replicas are served yet (the master role comes later), nor pub/sub clients.
                b"replica" | b"slave" | b"pubsub" => 0,
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
                _ => return Err(format!("ERR Unknown client type '{}'", lossy(&a[3])).into()),
            };
            ctx.out.int(n);
        }
        _ => {
            return Err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                lossy(&a[1])
            )
            .into())
        }
    }
    Ok(())
}

fn config(ctx: &mut Ctx, a: &[Bytes]) -> Res {
    let sub = a[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"get" if a.len() >= 3 => {
            let mut pairs: Vec<(&str, String)> = Vec::new();
            for p in &a[2..] {
                let p = String::from_utf8_lossy(p).to_ascii_lowercase();
                for name in crate::config::NAMES {
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
                let name = String::from_utf8_lossy(&kv[0]).into_owned();
                if !crate::config::Config::knows(&name) || name.eq_ignore_ascii_case("replicaof") {
                    return Err(format!(
                        "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                    )
                    .into());
                }
                let v = String::from_utf8_lossy(&kv[1]).into_owned();
                cfg.set(&name, &[v], false).map_err(|e| {
                    format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {e}")
                })?;
            }
            ctx.srv.cfg = cfg;
            ctx.out.ok();
        }
        b"resetstat" if a.len() == 2 => {
            ctx.srv.stats = Default::default();
            ctx.out.ok();
        }
        _ => {
            return Err(format!(
                "ERR unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
                lossy(&a[1])
            )
            .into())
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

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
