//! Hash-field TTLs end to end between the example server and real Redis 8.2:
//! - the example's replies to every hash-field TTL command equal Redis 8.2's;
//! - the example follows a Redis 8.2 master that uses every hash-field TTL command, field TTL
//!   by field TTL (`HPEXPIRETIME` on both sides), including fields that expire on the master
//!   and reach the replica as `HDEL`s;
//! - a full sync of a dataset with field TTLs (RDB 12 from the 8.2 master);
//! - the example as the master of a real 8.2 replica with `--repl-rdb-version 12`, and the
//!   snapshot it refuses (loudly) at the default RDB 9.
//!
//! Every test starts its own servers on free loopback ports with temp dirs.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use respsync::resp::Frame;
use support::{assert_same_data, run, wait_for, wait_in_sync, Conn, FrameExt, Peer, Proc};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Command lines (space-separated words).
fn lines(v: &[String]) -> Vec<Vec<Vec<u8>>> {
    v.iter()
        .map(|l| l.split(' ').map(|w| w.as_bytes().to_vec()).collect())
        .collect()
}

/// Per hash: its `HLEN`, and each field's `HPEXPIRETIME`.
type Ttls = BTreeMap<Vec<u8>, (i64, BTreeMap<Vec<u8>, i64>)>;

/// Every field of every hash in db 0 with its `HPEXPIRETIME`, and every hash's `HLEN`.
fn field_ttls(p: &Proc) -> Ttls {
    let mut c = p.conn();
    let mut out = BTreeMap::new();
    let keys = c.cmd(&["KEYS", "*"]);
    for k in keys.array() {
        let k = k.bytes();
        if c.cmd(&[&b"TYPE"[..], &k]).bytes() != b"hash" {
            continue;
        }
        let all = c.cmd(&[&b"HGETALL"[..], &k]);
        let fields: Vec<Vec<u8>> = all.array().iter().step_by(2).map(|f| f.bytes()).collect();
        let mut ttls = BTreeMap::new();
        if !fields.is_empty() {
            let mut argv: Vec<Vec<u8>> =
                vec![b"HPEXPIRETIME".to_vec(), k.clone(), b"FIELDS".to_vec()];
            argv.push(fields.len().to_string().into_bytes());
            argv.extend(fields.iter().cloned());
            let r = c.cmd(&argv);
            for (f, t) in fields.iter().zip(r.array()) {
                ttls.insert(f.clone(), t.int());
            }
        }
        let len = c.int(&[&b"HLEN"[..], &k]);
        out.insert(k, (len, ttls));
    }
    out
}

/// The two servers hold the same keys and values, and the same field TTLs.
fn assert_same_ttls(master: &Proc, replica: &Proc) -> Ttls {
    assert_same_data(master, replica);
    let m = field_ttls(master);
    let r = field_ttls(replica);
    assert_eq!(m, r, "field TTLs differ (master left, replica right)");
    m
}

fn ttl_of(d: &Ttls, key: &str, field: &str) -> i64 {
    d[key.as_bytes()].1[field.as_bytes()]
}

/// A dataset with field TTLs: small hashes (listpack with TTLs, RDB type 25) and a big one
/// (hash table with TTLs, type 24), TTLs set by every command that sets them, hashes without
/// any TTL, and fields whose TTL was removed.
fn populate_ttls(c: &mut Conn, far_ms: i64) {
    let far_s = far_ms / 1000;
    let mut cmds = vec![
        "HSET plain a 1 b 2".to_string(),
        "HSET small a 1 b 2 c 3 d 4".into(),
        format!("HPEXPIREAT small {far_ms} FIELDS 2 a b"),
        format!("HEXPIREAT small {far_s} FIELDS 1 c"),
        "HPERSIST small FIELDS 1 b".into(),
        format!("HSETEX withset PXAT {} FIELDS 2 x 1 y 2", far_ms + 7),
        "HSETEX withset EX 100000 FIELDS 1 z 3".into(),
    ];
    let mut big = "HSET big".to_string();
    for i in 0..300 {
        big.push_str(&format!(" f{i} value-{i}"));
    }
    cmds.push(big);
    let mut exp = format!("HPEXPIREAT big {} FIELDS 150", far_ms + 11);
    for i in 0..150 {
        exp.push_str(&format!(" f{i}"));
    }
    cmds.push(exp);
    cmds.push("HEXPIRE big 200000 GT FIELDS 2 f0 f200".into());
    run(c, &lines(&cmds));
}

/// The example's replies to the hash-field TTL commands (and to the hash commands they
/// interact with) equal Redis 8.2's, errors included.
#[test]
fn replies_match_redis82() {
    let redis = Proc::start(Peer::Redis82, &[]);
    let example = Proc::example(&[]);
    let far = 70_000_000_000_000i64;
    let script: Vec<String> = [
        "HSET h a 1 b 2 c 3 d 4",
        &format!("HPEXPIREAT h {far} FIELDS 3 a zz b"),
        &format!("HPEXPIREAT h {} NX FIELDS 2 a c", far + 1),
        &format!("HPEXPIREAT h {} GT FIELDS 2 a d", far + 2),
        &format!("HPEXPIREAT h {} LT FIELDS 2 a d", far - 1000),
        &format!("HPEXPIREAT h {} XX FIELDS 2 a d", far - 1000),
        "HPEXPIRETIME h FIELDS 5 a b c d zz",
        "HEXPIRETIME h FIELDS 5 a b c d zz",
        "HTTL h FIELDS 2 d zz",
        "HEXPIRE h 0 FIELDS 2 c d",
        "HLEN h",
        "HEXPIRE h -1 FIELDS 1 a",
        "HEXPIRE h abc FIELDS 1 a",
        "HEXPIRE h 100 FIELDS 0 a",
        "HEXPIRE h 100 FIELDS x a",
        "HEXPIRE h 100 FIELDS 2 a",
        "HEXPIRE h 100 FOO 1 a",
        "HEXPIRE h 100 NX FOO 1 a",
        "HEXPIRE h 99999999999999 FIELDS 1 a",
        "HPEXPIREAT h 70368744177664 FIELDS 1 a",
        "HPEXPIREAT h 70368744177663 FIELDS 1 a",
        "HPEXPIRETIME h FIELDS 1 a",
        "HTTL h FIELDS 0 a",
        "HTTL h FIELDX 1 a",
        "HTTL h FIELDS 2 a",
        "HTTL nokey FIELDS 2 a b",
        "HPERSIST h FIELDS 3 a c zz",
        "HPERSIST h FIELDS 1 a",
        "HPERSIST nokey FIELDS 1 a",
        "HSETEX h2 FIELDS 1 a",
        &format!("HSETEX h2 PXAT {far} FIELDS 1 a 1"),
        "HSETEX h2 KEEPTTL FIELDS 1 a 2",
        "HPEXPIRETIME h2 FIELDS 1 a",
        "HSETEX h2 FIELDS 1 a 3",
        "HPEXPIRETIME h2 FIELDS 1 a",
        "HSETEX h2 EX 10 EX 10 FIELDS 1 a 1",
        "HSETEX h2 FNX FXX FIELDS 1 a 1",
        "HSETEX h2 FOO FIELDS 1 a 1",
        "HSETEX h2 FIELDS 0 a 1",
        "HSETEX h2 FIELDS 2 a 1",
        "HSETEX h2 EX -1 FIELDS 1 a 1",
        "HSETEX h2 FIELDS 1 a 1 b",
        "HSETEX h2 EX",
        "HSETEX h2 FNX FIELDS 2 a 1 new 2",
        "HSETEX h2 FXX FIELDS 2 a 1 new 2",
        "HSETEX h2 FNX FIELDS 1 new 2",
        "HSETEX h2 FXX FIELDS 2 a 5 new 6",
        "HSETEX nokey FXX FIELDS 1 a 1",
        "EXISTS nokey",
        "HSETEX h2 EX 0 FIELDS 1 gone 1",
        "HEXISTS h2 gone",
        "HGETEX h2 EX 10 FIELDS",
        "HGETEX h2 EX 10 FIELDS 1",
        "HGETEX h2 FOO FIELDS 1 a",
        "HGETEX h2 PERSIST FIELDS 2 a",
        &format!("HGETEX h2 PXAT {far} FIELDS 3 a nope new"),
        "HPEXPIRETIME h2 FIELDS 3 a nope new",
        "HGETEX h2 PERSIST FIELDS 2 a new",
        "HPEXPIRETIME h2 FIELDS 3 a nope new",
        "HGETEX h2 FIELDS 1 a",
        "HGETEX nokey FIELDS 2 a b",
        "HGETEX h2 PX 0 FIELDS 1 a",
        "HGETDEL h2 FIELDS 0 a",
        "HGETDEL h2 FIELD 1 a",
        "HGETDEL h2 FIELDS 2 a",
        "HGETDEL h2 FIELDS 2 new nope",
        "EXISTS h2",
        "HGETDEL nokey FIELDS 1 a",
        "SET s v",
        "HEXPIRE s 10 FIELDS 1 a",
        "HEXPIRE s abc FIELDS 1 a",
        "HTTL s FIELDS 1 a",
        "HPERSIST s FIELDS 1 a",
        "HSETEX s FOO FIELDS 1 a 1",
        "HSETEX s FIELDS 1 a 1",
        "HGETEX s FIELDS 1 a",
        "HGETDEL s X 1 a",
        "HSET h3 f 1",
        &format!("HPEXPIREAT h3 {far} FIELDS 1 f"),
        "HINCRBY h3 f 5",
        "HPEXPIRETIME h3 FIELDS 1 f",
        "HSET h3 f 2",
        "HPEXPIRETIME h3 FIELDS 1 f",
        "HSETNX h3 f 3",
        "HEXISTS h3 f",
        "HEXISTS h3 g",
        "HPEXPIREAT h3 1 FIELDS 1 f",
        "EXISTS h3",
        "HSET h4 a 1 b 2",
        "HPEXPIRE h4 1 FIELDS 1 a",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (mut rc, mut ec) = (redis.conn(), example.conn());
    for cmd in lines(&script) {
        let (r, e) = (rc.cmd(&cmd), ec.cmd(&cmd));
        let shown: Vec<_> = cmd.iter().map(|w| String::from_utf8_lossy(w)).collect();
        assert_eq!(
            e, r,
            "{shown:?}: example (left) and Redis 8.2 (right) differ"
        );
    }
    // An expired field: gone for HGET, HGETALL, HTTL; its deletion empties nothing else.
    std::thread::sleep(Duration::from_millis(20));
    for cmd in lines(&[
        "HGET h4 a".into(),
        "HGETALL h4".into(),
        "HTTL h4 FIELDS 1 a".into(),
        "HLEN h4".into(),
    ]) {
        assert_eq!(ec.cmd(&cmd), rc.cmd(&cmd));
    }
}

/// The example follows a Redis 8.2 master through every hash-field TTL command; fields that
/// expire on the master are deleted on the replica by the master's `HDEL`s.
#[test]
fn follows_redis82_master_field_by_field() {
    let master = Proc::start(Peer::Redis82, &[]);
    let port = master.port.to_string();
    let replica = Proc::example(&["--replicaof", "127.0.0.1", &port]);
    wait_in_sync(&master, &replica);
    let mut c = master.conn();
    let far = now_ms() + 50_000_000;
    let far_s = far / 1000 + 1;
    let cmds: Vec<String> = vec![
        "HSET h1 a 1 b 2 c 3 d 4 e 5".into(),
        "HEXPIRE h1 1000 FIELDS 2 a b".into(),
        "HPEXPIRE h1 2000000 NX FIELDS 3 a c zz".into(),
        format!("HEXPIREAT h1 {far_s} XX FIELDS 2 a d"),
        format!("HPEXPIREAT h1 {far} GT FIELDS 1 b"),
        format!("HPEXPIREAT h1 {far} LT FIELDS 1 e"),
        "HPERSIST h1 FIELDS 2 c zz".into(),
        "HSETEX h2 EX 1000 FIELDS 2 f1 v1 f2 v2".into(),
        "HSETEX h2 FNX PX 5000000 FIELDS 1 f3 v3".into(),
        "HSETEX h2 FXX KEEPTTL FIELDS 2 f1 w1 f2 w2".into(),
        format!("HSETEX h2 FXX EXAT {far_s} FIELDS 1 nope x"),
        format!("HSETEX h2 PXAT {far} FIELDS 1 f4 v4"),
        "HSETEX h2 FIELDS 1 f3 plain".into(),
        "HGETEX h2 EX 3000 FIELDS 2 f1 nope".into(),
        "HGETEX h2 PERSIST FIELDS 1 f2".into(),
        format!("HGETEX h2 PXAT {} FIELDS 1 f4", far + 5),
        "HSETEX h2 FIELDS 2 f5 v5 f6 v6".into(),
        "HGETDEL h2 FIELDS 2 f5 nope".into(),
        "HINCRBY h1 a 5".into(),
        "HSET h1 b 9".into(),
        "HEXPIRE h1 0 FIELDS 2 e nope".into(),
        "HGETEX h2 PX 0 FIELDS 1 f6".into(),
        "HSETEX h7 EX 0 FIELDS 2 p 1 q 2".into(),
        // Short TTLs: they expire on the master during the test.
        "HSET h4 x 1 y 2 z 3".into(),
        "HPEXPIRE h4 300 FIELDS 2 x y".into(),
        "HSET h5 only 1".into(),
        "HPEXPIRE h5 300 FIELDS 1 only".into(),
        "HSETEX h6 PX 300 FIELDS 1 s 1".into(),
        "HSETEX h6 FIELDS 1 t 2".into(),
    ];
    run(&mut c, &lines(&cmds));
    populate_ttls(&mut c, far);
    wait_in_sync(&master, &replica);
    let d = assert_same_ttls(&master, &replica);
    assert!(ttl_of(&d, "h1", "a") > 0 && ttl_of(&d, "h1", "c") == -1);
    assert_eq!(ttl_of(&d, "h1", "b"), -1, "HSET clears the TTL");
    assert_eq!(ttl_of(&d, "h2", "f4"), far + 5);
    assert!(!d.contains_key(&b"h7"[..]));
    assert_eq!(d[&b"h4"[..]].0, 3);

    // The short TTLs pass: the master deletes the fields (active or lazy expiry) and streams
    // HDELs; the replica ends with the same data without deleting anything itself.
    std::thread::sleep(Duration::from_millis(400));
    wait_for(10, "the master to expire h4.x, h4.y, h5, h6.s", || {
        let mut c = master.conn();
        c.int(&["HLEN", "h4"]) == 1 && c.int(&["EXISTS", "h5"]) == 0 && c.int(&["HLEN", "h6"]) == 1
    });
    wait_in_sync(&master, &replica);
    let d = assert_same_ttls(&master, &replica);
    assert_eq!(d[&b"h4"[..]], (1, BTreeMap::from([(b"z".to_vec(), -1)])));
    assert!(!d.contains_key(&b"h5"[..]));
    assert_eq!(replica.conn().int(&["HLEN", "h4"]), 1);
    assert!(
        !replica.log_text().contains("unknown command"),
        "the replica met a command it does not know:\n{}",
        replica.log_text()
    );
}

/// A full sync from a Redis 8.2 master of hashes with field TTLs (RDB 12, both hash-with-TTL
/// encodings) keeps every field TTL.
#[test]
fn full_sync_from_redis82_keeps_field_ttls() {
    let master = Proc::start(Peer::Redis82, &[]);
    let mut c = master.conn();
    let far = now_ms() + 40_000_000;
    populate_ttls(&mut c, far);
    let port = master.port.to_string();
    let replica = Proc::example(&["--replicaof", "127.0.0.1", &port]);
    wait_in_sync(&master, &replica);
    let d = assert_same_ttls(&master, &replica);
    assert_eq!(ttl_of(&d, "big", "f1"), far + 11);
    assert_eq!(ttl_of(&d, "big", "f299"), -1);
    assert_eq!(ttl_of(&d, "small", "a"), far);
    assert_eq!(ttl_of(&d, "withset", "y"), far + 7);
    // The loaded TTLs keep working: a TTL streamed afterwards replaces one loaded.
    let r = c.cmd(&["HPEXPIRE", "small", "400000000", "FIELDS", "1", "a"]);
    assert_eq!(r, Frame::Array(vec![Frame::Integer(1)]));
    wait_in_sync(&master, &replica);
    assert_same_ttls(&master, &replica);
}

/// The example as master: a real Redis 8.2 replica loads its RDB 12 snapshot with field TTLs,
/// follows its stream (field TTLs set, removed, expiring); at the default RDB 9 the snapshot is
/// refused, and the log says why.
#[test]
fn example_master_serves_redis82_replica_at_rdb12() {
    // RDB 9 cannot hold field TTLs: the snapshot is refused, loudly, and the replica stays out.
    let old = Proc::example(&["--repl-diskless-sync-delay", "0"]);
    run(
        &mut old.conn(),
        &lines(&["HSETEX k PX 100000000 FIELDS 1 f v".into()]),
    );
    let port = old.port.to_string();
    let refused = Proc::start(Peer::Redis82, &["--replicaof", "127.0.0.1", &port]);
    wait_for(15, "the RDB 9 snapshot to be refused", || {
        old.log_text().contains("snapshot refused: 1 hash key(s)")
    });
    assert_ne!(
        refused.info("replication", "master_link_status").as_deref(),
        Some("up")
    );
    drop(refused);
    drop(old);

    let master = Proc::example(&[
        "--repl-diskless-sync-delay",
        "0",
        "--repl-rdb-version",
        "12",
    ]);
    let mut c = master.conn();
    let far = now_ms() + 30_000_000;
    populate_ttls(&mut c, far);
    let port = master.port.to_string();
    let replica = Proc::start(Peer::Redis82, &["--replicaof", "127.0.0.1", &port]);
    wait_in_sync(&master, &replica);
    let d = assert_same_ttls(&master, &replica);
    assert_eq!(ttl_of(&d, "big", "f149"), far + 11);

    let cmds: Vec<String> = vec![
        "HEXPIRE small 5000 FIELDS 2 b d".into(),
        "HPERSIST big FIELDS 1 f3".into(),
        format!("HSETEX withset FXX PXAT {} FIELDS 1 x 9", far + 100),
        "HGETEX withset EX 7000 FIELDS 1 z".into(),
        "HGETDEL plain FIELDS 1 a".into(),
        "HEXPIRE big 0 FIELDS 2 f10 f11".into(),
        "HSET short a 1 b 2".into(),
        "HPEXPIRE short 200 FIELDS 2 a b".into(),
        "HSETEX short2 PX 200 FIELDS 1 a 1".into(),
        "HSETEX short2 FIELDS 1 b 1".into(),
    ];
    run(&mut c, &lines(&cmds));
    wait_in_sync(&master, &replica);
    let d = assert_same_ttls(&master, &replica);
    assert_eq!(ttl_of(&d, "big", "f3"), -1);
    assert!(!d[&b"big"[..]].1.contains_key(&b"f10"[..]));
    std::thread::sleep(Duration::from_millis(300));
    wait_for(10, "the example to expire short and short2.a", || {
        let mut c = master.conn();
        c.int(&["EXISTS", "short"]) == 0 && c.int(&["HLEN", "short2"]) == 1
    });
    wait_in_sync(&master, &replica);
    let d = assert_same_ttls(&master, &replica);
    assert!(!d.contains_key(&b"short"[..]));
    // The replica deleted them because the stream said so (it never expires fields itself).
    assert_eq!(replica.conn().int(&["HLEN", "short2"]), 1);
    assert!(matches!(
        replica.conn().cmd(&["EXISTS", "short"]),
        Frame::Integer(0)
    ));
}
