//! Command facts the replication protocol depends on: which commands write (refused on a
//! read-only replica, paused during `FAILOVER`, refused by `min-replicas-to-write`), which may
//! run on a replica serving stale data, Redis's exact error replies for those checks, and the
//! parsing of `REPLICAOF` and `WAIT` arguments.
//!
//! ```
//! use respsync::commands::{is_write, parse_replicaof, ReplicaOf};
//!
//! assert!(is_write(b"SET") && is_write(b"xreadgroup") && !is_write(b"get"));
//! assert_eq!(parse_replicaof(b"no", b"one"), Ok(ReplicaOf::NoOne));
//! assert_eq!(
//!     parse_replicaof(b"127.0.0.1", b"6379"),
//!     Ok(ReplicaOf::Master { host: "127.0.0.1".into(), port: 6379 })
//! );
//! assert_eq!(parse_replicaof(b"h", b"70000"), Err(respsync::commands::INVALID_MASTER_PORT));
//! ```

use std::time::Duration;

/// `-READONLY` for a write on a read-only replica (reply with a leading `-`).
pub const READONLY: &str = "READONLY You can't write against a read only replica.";
/// `-MASTERDOWN` for a command without the `stale` flag on a replica whose link is down and
/// `replica-serve-stale-data no`.
pub const MASTERDOWN: &str =
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";
/// `-NOREPLICAS` for a write refused by `min-replicas-to-write`.
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";

/// The error a client blocked in `WAIT` gets when its master starts following another
/// ([`NodeEvent::WaitUnblocked`](crate::node::NodeEvent::WaitUnblocked)); Redis then closes its
/// connection after the reply.
pub const UNBLOCKED: &str =
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)";
/// `REPLICAOF` with a bad port.
pub const INVALID_MASTER_PORT: &str = "ERR Invalid master port";
/// `WAIT` with a negative timeout.
pub const NEGATIVE_TIMEOUT: &str = "ERR timeout is negative";

/// Commands Redis 7 flags `write` (and the hash-field TTL writes of Redis 7.4/8), lowercase.
pub const WRITE_COMMANDS: &[&str] = &[
    "append",
    "bitfield",
    "bitop",
    "blmove",
    "blmpop",
    "blpop",
    "brpop",
    "brpoplpush",
    "bzmpop",
    "bzpopmax",
    "bzpopmin",
    "copy",
    "decr",
    "decrby",
    "del",
    "expire",
    "expireat",
    "flushall",
    "flushdb",
    "function",
    "geoadd",
    "georadius",
    "georadiusbymember",
    "geosearchstore",
    "getdel",
    "getex",
    "getset",
    "hdel",
    "hexpire",
    "hexpireat",
    "hgetdel",
    "hgetex",
    "hincrby",
    "hincrbyfloat",
    "hmset",
    "hpersist",
    "hpexpire",
    "hpexpireat",
    "hset",
    "hsetex",
    "hsetnx",
    "incr",
    "incrby",
    "incrbyfloat",
    "linsert",
    "lmove",
    "lmpop",
    "lpop",
    "lpush",
    "lpushx",
    "lrem",
    "lset",
    "ltrim",
    "migrate",
    "move",
    "mset",
    "msetnx",
    "persist",
    "pexpire",
    "pexpireat",
    "pfadd",
    "pfdebug",
    "pfmerge",
    "psetex",
    "rename",
    "renamenx",
    "restore",
    "restore-asking",
    "rpop",
    "rpoplpush",
    "rpush",
    "rpushx",
    "sadd",
    "sdiffstore",
    "set",
    "setbit",
    "setex",
    "setnx",
    "setrange",
    "sinterstore",
    "smove",
    "sort",
    "spop",
    "srem",
    "sunionstore",
    "swapdb",
    "unlink",
    "xack",
    "xadd",
    "xautoclaim",
    "xclaim",
    "xdel",
    "xgroup",
    "xreadgroup",
    "xsetid",
    "xtrim",
    "zadd",
    "zdiffstore",
    "zincrby",
    "zinterstore",
    "zmpop",
    "zpopmax",
    "zpopmin",
    "zrangestore",
    "zrem",
    "zremrangebylex",
    "zremrangebyrank",
    "zremrangebyscore",
    "zunionstore",
];

/// Commands Redis 7 flags `stale`: they still run on a replica whose link is down with
/// `replica-serve-stale-data no` (everything else gets [`MASTERDOWN`]), lowercase.
pub const STALE_COMMANDS: &[&str] = &[
    "acl",
    "auth",
    "client",
    "command",
    "config",
    "discard",
    "exec",
    "failover",
    "hello",
    "info",
    "lastsave",
    "latency",
    "module",
    "monitor",
    "multi",
    "psubscribe",
    "punsubscribe",
    "quit",
    "readonly",
    "readwrite",
    "replconf",
    "replicaof",
    "reset",
    "role",
    "select",
    "shutdown",
    "slaveof",
    "slowlog",
    "subscribe",
    "time",
    "unsubscribe",
    "unwatch",
    "watch",
];

fn lookup(table: &[&str], name: &[u8]) -> bool {
    if name.len() > 32 {
        return false;
    }
    let mut buf = [0u8; 32];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    table
        .binary_search(&std::str::from_utf8(lower).unwrap_or(""))
        .is_ok()
}

/// Whether the command named `name` (any case) writes data.
pub fn is_write(name: &[u8]) -> bool {
    lookup(WRITE_COMMANDS, name)
}

/// Whether the command may run on a replica serving no stale data while its link is down.
pub fn is_stale_ok(name: &[u8]) -> bool {
    lookup(STALE_COMMANDS, name)
}

/// A parsed `REPLICAOF` / `SLAVEOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaOf {
    /// `REPLICAOF NO ONE`: become (or stay) a master.
    NoOne,
    /// `REPLICAOF host port`.
    Master {
        /// The master's host.
        host: String,
        /// Its port.
        port: u16,
    },
}

/// Parses `REPLICAOF host port`, with Redis's error for a bad port ([`INVALID_MASTER_PORT`]).
pub fn parse_replicaof(host: &[u8], port: &[u8]) -> Result<ReplicaOf, &'static str> {
    if host.eq_ignore_ascii_case(b"no") && port.eq_ignore_ascii_case(b"one") {
        return Ok(ReplicaOf::NoOne);
    }
    let port = std::str::from_utf8(port)
        .ok()
        .and_then(|p| p.parse::<i64>().ok())
        .and_then(|p| u16::try_from(p).ok())
        .ok_or(INVALID_MASTER_PORT)?;
    Ok(ReplicaOf::Master {
        host: String::from_utf8_lossy(host).into_owned(),
        port,
    })
}

/// Parses `WAIT numreplicas timeout`: the count and the timeout (`None`: forever).
///
/// ```
/// use std::time::Duration;
/// use respsync::commands::parse_wait;
///
/// assert_eq!(parse_wait(b"2", b"100"), Ok((2, Some(Duration::from_millis(100)))));
/// assert_eq!(parse_wait(b"1", b"0"), Ok((1, None)));
/// assert_eq!(parse_wait(b"1", b"-1"), Err("ERR timeout is negative"));
/// ```
pub fn parse_wait(
    replicas: &[u8],
    timeout: &[u8],
) -> Result<(usize, Option<Duration>), &'static str> {
    const NOT_INT: &str = "ERR value is not an integer or out of range";
    let n = crate::master::parse_i64(replicas).ok_or(NOT_INT)?;
    let t =
        crate::master::parse_i64(timeout).ok_or("ERR timeout is not an integer or out of range")?;
    if t < 0 {
        return Err(NEGATIVE_TIMEOUT);
    }
    let n = usize::try_from(n).unwrap_or(0);
    Ok((n, (t > 0).then(|| Duration::from_millis(t as u64))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(WRITE_COMMANDS.windows(2).all(|w| w[0] < w[1]));
        assert!(STALE_COMMANDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn lookups_ignore_case_and_reject_long_names() {
        assert!(is_write(b"HSETEX") && is_write(b"flushall"));
        assert!(!is_write(b"ping") && !is_write(&[b'a'; 40]));
        assert!(is_stale_ok(b"INFO") && !is_stale_ok(b"get") && !is_stale_ok(b"ping"));
    }
}
