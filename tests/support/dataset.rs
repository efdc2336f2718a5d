//! Test data written through a client: argument vectors, pipelines that must not fail, and
//! one dataset with every type.

use respsync::resp::Frame;

use super::client::Conn;
use super::server::{Peer, Proc};

/// `len` deterministic pseudo-random bytes (xorshift64 from `seed`): data LZF cannot shrink.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Owned argument vectors from words.
pub fn s(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// Runs `cmds` in one pipeline; any error reply is a panic naming the command.
pub fn run(c: &mut Conn, cmds: &[Vec<Vec<u8>>]) -> Vec<Frame> {
    let replies = c.pipeline(cmds);
    for (cmd, reply) in cmds.iter().zip(&replies) {
        if let Frame::Error(e) = reply {
            let words: Vec<_> = cmd.iter().map(|w| String::from_utf8_lossy(w)).collect();
            panic!("{words:?} failed: {}", String::from_utf8_lossy(e));
        }
    }
    replies
}

/// A dataset with every type the example server holds, in small and large forms, with
/// binary-safe keys and values, expiries (long ones), streams with consumer groups, in
/// several dbs. Stream `stream` in db 0 ends with group `grp` (last delivered 3-0, 3-0
/// pending for `alice`) and group `late` (at 4-0); `empty-stream` has group `g`.
pub fn populate(c: &mut Conn) {
    let mut cmds = vec![
        s(&["SET", "str", "hello"]),
        s(&["SET", "int", "12345"]),
        s(&["SET", "neg", "-42"]),
        s(&["SET", "empty", ""]),
        s(&["SET", "ttl", "v", "EX", "100000"]),
        s(&["SET", "pttl", "v", "PX", "100000000"]),
        s(&["RPUSH", "list", "a", "b", "c", "1", "2"]),
        s(&["SADD", "intset", "1", "2", "3", "-7"]),
        s(&["SADD", "set", "x", "y", "z"]),
        s(&["HSET", "hash", "f1", "v1", "f2", "2"]),
        s(&[
            "ZADD", "zset", "1", "a", "2.5", "b", "-inf", "c", "inf", "d",
        ]),
        s(&["XADD", "stream", "1-1", "f", "v"]),
        s(&["XADD", "stream", "2-1", "f", "w", "g", "x"]),
        s(&["XADD", "stream", "3-0", "a", "b"]),
        s(&["XADD", "stream", "4-0", "c", "d"]),
        s(&["XDEL", "stream", "2-1"]),
        s(&["XGROUP", "CREATE", "stream", "grp", "0"]),
        s(&["XGROUP", "CREATE", "stream", "late", "$"]),
        s(&[
            "XREADGROUP",
            "GROUP",
            "grp",
            "alice",
            "COUNT",
            "2",
            "STREAMS",
            "stream",
            ">",
        ]),
        s(&["XACK", "stream", "grp", "1-1"]),
        s(&["XGROUP", "CREATE", "empty-stream", "g", "$", "MKSTREAM"]),
        s(&["EXPIRE", "list", "100000"]),
        s(&["SELECT", "3"]),
        s(&["SET", "db3key", "three"]),
        s(&["HSET", "db3hash", "a", "b"]),
        s(&["SET", "str", "same name, other db"]),
        s(&["SELECT", "15"]),
        s(&["RPUSH", "db15list", "z"]),
        s(&["ZADD", "db15zset", "0.1", "m"]),
        s(&["PEXPIRE", "db15zset", "100000000"]),
        s(&["SELECT", "0"]),
    ];
    cmds.push(vec![
        b"SET".to_vec(),
        b"bin\x00\r\nkey".to_vec(),
        (0..=255u8).collect(),
    ]);
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    cmds.push(vec![b"SET".to_vec(), b"bigstr".to_vec(), big]);
    let mut biglist = s(&["RPUSH", "biglist"]);
    let mut bigset = s(&["SADD", "bigset"]);
    let mut bighash = s(&["HSET", "bighash"]);
    let mut bigzset = s(&["ZADD", "bigzset"]);
    for i in 0..600 {
        biglist.push(format!("element-{i}").into_bytes());
        bigset.push(format!("member-{i}").into_bytes());
        bighash.push(format!("field-{i}").into_bytes());
        bighash.push(format!("value-{}", i * 3).into_bytes());
        bigzset.push(format!("{}", i as f64 / 7.0).into_bytes());
        bigzset.push(format!("m{i}").into_bytes());
    }
    cmds.extend([biglist, bigset, bighash, bigzset]);
    for i in 0..200 {
        cmds.push(s(&["SET", &format!("key:{i}"), &format!("value:{i}")]));
    }
    run(c, &cmds);
}

// ------------------------------------------------------------------ bulk string keys

/// `n` string keys in `db`, written with pipelined MSETs.
pub fn load_bulk(c: &mut Conn, db: u32, n: usize) {
    c.ok(&["SELECT", &db.to_string()]);
    let mut cmds = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut cmd = s(&["MSET"]);
        for i in chunk {
            cmd.push(format!("bulk:{i}").into_bytes());
            cmd.push(format!("value-{i}-{}", "x".repeat(i % 16)).into_bytes());
        }
        cmds.push(cmd);
        if cmds.len() == 50 {
            run(c, &cmds);
            cmds.clear();
        }
    }
    run(c, &cmds);
    c.ok(&["SELECT", "0"]);
}

/// The bulk keys of `db` are equal on both sides (compared with pipelined MGETs), then
/// dropped with a propagated FLUSHDB so that the datasets can be compared key by key.
pub fn check_and_drop_bulk(peer: Peer, m: &Proc, replicas: &[&Proc], db: u32, n: usize) {
    let mget = |p: &Proc| {
        let mut c = p.conn();
        c.ok(&["SELECT", &db.to_string()]);
        assert_eq!(c.int(&["DBSIZE"]), n as i64, "[{peer}] bulk keys");
        let keys: Vec<usize> = (0..n).collect();
        let cmds: Vec<Vec<Vec<u8>>> = keys
            .chunks(1000)
            .map(|ch| {
                let mut cmd = s(&["MGET"]);
                cmd.extend(ch.iter().map(|i| format!("bulk:{i}").into_bytes()));
                cmd
            })
            .collect();
        run(&mut c, &cmds)
    };
    let want = mget(m);
    for r in replicas {
        assert!(mget(r) == want, "[{peer}] bulk values differ");
    }
    let db = db.to_string();
    run(&mut m.conn(), &[s(&["SELECT", &db]), s(&["FLUSHDB"])]);
}
