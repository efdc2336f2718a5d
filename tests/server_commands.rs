//! Black-box test of `examples/server` as a plain server: the same command script is sent to a
//! real `redis-server` 7.0 and to the example server, and every reply must be byte-identical
//! (after sorting the few replies whose order Redis does not define).

mod support;

use respsync::resp::Frame;
use support::{Conn, Proc};

/// Commands whose array reply has no defined order.
const UNORDERED: &[&str] = &["keys", "smembers", "hgetall"];

fn canonical(cmd: &str, f: Frame) -> Frame {
    let name = cmd.split(' ').next().unwrap_or("").to_ascii_lowercase();
    match f {
        Frame::Array(mut items) if UNORDERED.contains(&name.as_str()) => {
            if name == "hgetall" {
                let mut pairs: Vec<Vec<u8>> = items
                    .chunks(2)
                    .map(|p| format!("{:?}", p).into_bytes())
                    .collect();
                pairs.sort();
                return Frame::Array(pairs.into_iter().map(Frame::bulk).collect());
            }
            items.sort_by_key(|x| format!("{x:?}"));
            Frame::Array(items)
        }
        other => other,
    }
}

const SCRIPT: &[&str] = &[
    "PING",
    "PING hello",
    "ECHO",
    "ECHO hi",
    "NOSUCHCOMMAND a b",
    "GET",
    "SET k v",
    "GET k",
    "TYPE k",
    "TYPE nokey",
    "EXISTS k nokey k",
    "STRLEN k",
    "APPEND k 123",
    "GET k",
    "INCR k",
    "SET n 10",
    "INCR n",
    "INCRBY n -5",
    "DECR n",
    "DECRBY n 3",
    "INCRBY n x",
    "SET big 9223372036854775807",
    "INCR big",
    "GETSET n 100",
    "MSET a 1 b 2 c 3",
    "MSET a",
    "MGET a b nokey c",
    "SET k v NX",
    "SET k2 v XX",
    "SET k v2 XX GET",
    "SET k v NX XX",
    "SET k v EX 0",
    "SET k v PX -5",
    "SET k v EX 100 PX 100",
    "SET k v KEEPTTL EX 10",
    "SET t v EX 1000",
    "TTL t",
    "PERSIST t",
    "TTL t",
    "PTTL nokey",
    "EXPIRE t 1000 NX",
    "EXPIRE t 1000 XX",
    "EXPIRE t 2000 GT",
    "EXPIRE t 10 LT",
    "EXPIRE t 10 NX XX",
    "EXPIRE t abc",
    "TTL t",
    "EXPIRE nokey 10",
    "SETNX k x",
    "SETNX fresh x",
    "SETEX se 100 v",
    "SETEX se 0 v",
    "PSETEX pse 100000 v",
    "LPUSH k x",
    "RPUSH l a b c",
    "LPUSH l z",
    "LRANGE l 0 -1",
    "LRANGE l -2 100",
    "LRANGE l 5 1",
    "LLEN l",
    "LINDEX l 1",
    "LINDEX l -1",
    "LINDEX l 99",
    "LPOP l",
    "RPOP l 2",
    "LPOP l 5",
    "LPOP l",
    "EXISTS l",
    "LPOP nolist 2",
    "RPOP l -1",
    "SADD s a b c a",
    "SREM s a x",
    "SCARD s",
    "SISMEMBER s b",
    "SISMEMBER s a",
    "SMEMBERS s",
    "SCARD k",
    "HSET h f1 v1 f2 v2",
    "HSET h f1",
    "HGET h f1",
    "HGET h nofield",
    "HLEN h",
    "HDEL h f1 nofield",
    "HGETALL h",
    "HINCRBY h f2 1",
    "HINCRBY h cnt 5",
    "HINCRBY h cnt x",
    "HMSET h a 1 b 2",
    "HSETNX h a 9",
    "HSETNX h new 9",
    "ZADD z 1 a 2 b 3 c",
    "ZADD z NX XX 1 a",
    "ZADD z GT LT 1 a",
    "ZADD z x a",
    "ZADD z 1",
    "ZADD z INCR 1 a 2 b",
    "ZADD z INCR 1.5 a",
    "ZADD z CH 10 a 20 d",
    "ZADD z 1.1 e -inf f +inf g",
    "ZSCORE z e",
    "ZSCORE z f",
    "ZSCORE z nomember",
    "ZCARD z",
    "ZRANGE z 0 -1",
    "ZRANGE z 0 -1 WITHSCORES",
    "ZRANGE z 1 2 REV WITHSCORES",
    "ZRANGE z (1 10 BYSCORE",
    "ZRANGE z -inf +inf BYSCORE LIMIT 1 2 WITHSCORES",
    "ZRANGE z 0 -1 LIMIT 1 2",
    "ZREM z a nomember",
    "XADD st 1-1 f v",
    "XADD st 1-1 f v",
    "XADD st 0-0 f v",
    "XADD st 2-5 a b c d",
    "XADD st 2-* x y",
    "XADD st f",
    "XLEN st",
    "XRANGE st - +",
    "XRANGE st - + COUNT 1",
    "XRANGE st (1-1 +",
    "XDEL st 1-1 9-9",
    "XGROUP CREATE st g 0",
    "XGROUP CREATE st g 0",
    "XGROUP CREATE nost g $",
    "XGROUP CREATE nost2 g $ MKSTREAM",
    "XREADGROUP GROUP g alice COUNT 1 STREAMS st >",
    "XREADGROUP GROUP g alice STREAMS st 0",
    "XREADGROUP GROUP nogroup alice STREAMS st >",
    "XREADGROUP GROUP g bob STREAMS st >",
    "XREADGROUP GROUP g bob STREAMS st >",
    "XACK st g 2-5",
    "XLEN k",
    "DEL a b nokey",
    "UNLINK c",
    "DBSIZE",
    "KEYS *",
    "KEYS h*",
    "SELECT 16",
    "SELECT x",
    "SELECT 3",
    "DBSIZE",
    "SET db3 x",
    "FLUSHDB",
    "DBSIZE",
    "SELECT 0",
    "MULTI",
    "SET tx 1",
    "INCR tx",
    "GET tx",
    "EXEC",
    "EXEC",
    "DISCARD",
    "MULTI",
    "MULTI",
    "DISCARD",
    "MULTI",
    "SET tx",
    "EXEC",
    "MULTI",
    "LPUSH tx x",
    "INCR tx",
    "EXEC",
    "CONFIG GET repl-backlog-size",
    "CONFIG GET replica-read-only",
    "CONFIG SET repl-backlog-size 2x",
    "CONFIG SET nosuchoption 1",
    "CONFIG SET repl-backlog-size 2mb",
    "CONFIG GET repl-backlog-size",
    "CONFIG SET repl-timeout 30 replica-read-only no",
    "CONFIG GET repl-timeout",
    "CLIENT KILL TYPE master",
    "CLIENT KILL TYPE replica",
    "CLIENT KILL TYPE nosuch",
    "ROLE",
    "AUTH pw",
    "REPLICAOF a",
    "REPLICAOF NO ONE",
    "FLUSHALL",
    "DBSIZE",
];

#[test]
fn replies_match_redis_7_byte_for_byte() {
    let redis = Proc::redis(&[]);
    let ours = Proc::example(&[]);
    let (mut a, mut b) = (redis.conn(), ours.conn());
    for cmd in SCRIPT {
        let argv: Vec<&str> = cmd.split(' ').collect();
        let want = canonical(cmd, a.cmd(&argv));
        let got = canonical(cmd, b.cmd(&argv));
        assert_eq!(
            got, want,
            "reply to `{cmd}` differs (left: example server, right: redis)"
        );
    }
}

#[test]
fn info_replication_fields_for_a_master() {
    let ours = Proc::example(&[]);
    let text = ours.conn().bulk_text(&["INFO", "replication"]);
    let fields: Vec<&str> = text.lines().filter_map(|l| l.split(':').next()).collect();
    let redis = Proc::redis(&[]);
    let want = redis.conn().bulk_text(&["INFO", "replication"]);
    let want: Vec<&str> = want.lines().filter_map(|l| l.split(':').next()).collect();
    assert_eq!(fields, want);
    for (k, v) in [
        ("role", "master"),
        ("connected_slaves", "0"),
        ("master_failover_state", "no-failover"),
        ("master_replid2", "0000000000000000000000000000000000000000"),
        ("master_repl_offset", "0"),
        ("second_repl_offset", "-1"),
        ("repl_backlog_active", "0"),
    ] {
        assert_eq!(ours.info("replication", k).as_deref(), Some(v), "{k}");
    }
    let id = ours
        .info("replication", "master_replid")
        .unwrap_or_default();
    assert!(
        id.len() == 40 && id.bytes().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    for k in [
        "sync_full",
        "sync_partial_ok",
        "sync_partial_err",
        "expired_keys",
    ] {
        assert_eq!(ours.info_i64("stats", k), 0, "{k}");
    }
}

#[test]
fn active_expiry_removes_keys_nobody_reads() {
    let ours = Proc::example(&[]);
    let mut c = ours.conn();
    c.ok(&["SET", "gone", "v", "PX", "50"]);
    c.ok(&["SET", "stays", "v"]);
    support::wait_for(5, "active expiry", || {
        ours.info_i64("stats", "expired_keys") == 1
    });
    assert_eq!(c.int(&["DBSIZE"]), 1);
}

#[test]
fn requirepass_and_inline_commands() {
    let ours = Proc::example(&["--requirepass", "pw"]);
    let mut c = Conn::open(ours.port);
    assert_eq!(
        c.cmd(&["GET", "k"]),
        Frame::error("NOAUTH Authentication required.")
    );
    assert_eq!(
        c.cmd(&["AUTH", "bad"]),
        Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(c.cmd(&["AUTH", "pw"]), Frame::simple("OK"));
    // redis-cli and telnet users send inline commands.
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &ours.port.to_string(),
            "-a",
            "pw",
            "--no-auth-warning",
            "PING",
        ])
        .output()
        .expect("redis-cli");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");
}
