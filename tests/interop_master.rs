//! The example server as the master of real replicas: Redis 6.2, Redis 7.0, Redis 8.2 and
//! Valkey 8.1 ([`Peer::ALL`]), one module of tests per peer.
//!
//! Every test starts its own example master and real replica(s) on free loopback ports with
//! temp dirs (killed on drop). After every step the replica must be in sync: its
//! `slave_repl_offset` and its own `master_repl_offset` equal the example's
//! `master_repl_offset`, and the datasets are equal key by key.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use respsync::resp::Frame;
use support::{
    assert_same_data, check_and_drop_bulk, load_bulk, offsets_equal, populate, run, s, wait_for,
    Conn, FrameExt, Peer, Proc,
};

/// Runs space-separated command lines in one pipeline.
fn lines(c: &mut Conn, cmds: &[&str]) -> Vec<Frame> {
    let cmds: Vec<_> = cmds
        .iter()
        .map(|l| s(&l.split(' ').collect::<Vec<_>>()))
        .collect();
    run(c, &cmds)
}

/// A real replica of `peer` following `master` (plus `extra` options).
fn follow(peer: Peer, master: &Proc, extra: &[&str]) -> Proc {
    let port = master.port.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    args.extend_from_slice(extra);
    Proc::start(peer, &args)
}

/// An example master: the replication options that keep tests fast, plus `extra`.
fn master(extra: &[&str]) -> Proc {
    let mut args = vec!["--repl-diskless-sync-delay", "0"];
    args.extend_from_slice(extra);
    Proc::example(&args)
}

/// Waits until `replica` is online with every offset equal to the master's, then compares
/// the datasets key by key. Returns the offset.
fn in_sync(peer: Peer, master: &Proc, replica: &Proc, step: &str) -> i64 {
    let off = offsets_equal(peer, master, replica, step);
    assert_same_data(master, replica);
    off
}

fn stat(p: &Proc, field: &str) -> i64 {
    p.info_i64("stats", field)
}

/// The groups of stream `key` in `db` on a real server: (name, pending, last-delivered-id,
/// consumers), sorted by name.
fn groups(p: &Proc, db: u32, key: &str) -> Vec<(String, i64, String, i64)> {
    let mut c = p.conn();
    c.ok(&["SELECT", &db.to_string()]);
    let reply = c.cmd(&["XINFO", "GROUPS", key]);
    let mut out: Vec<_> = reply
        .array()
        .iter()
        .map(|g| {
            let g = g.array();
            let get = |name: &str| {
                g.chunks(2)
                    .find(|p| p[0].bytes() == name.as_bytes())
                    .map(|p| p[1].clone())
                    .unwrap_or_else(|| panic!("XINFO GROUPS has no {name}"))
            };
            let text = |f: Frame| String::from_utf8_lossy(&f.bytes()).into_owned();
            (
                text(get("name")),
                get("pending").int(),
                text(get("last-delivered-id")),
                get("consumers").int(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The pending entries of `group` on stream `key` in `db`: (id, consumer), in id order.
fn pending(p: &Proc, db: u32, key: &str, group: &str) -> Vec<(String, String)> {
    let mut c = p.conn();
    c.ok(&["SELECT", &db.to_string()]);
    c.cmd(&["XPENDING", key, group, "-", "+", "1000"])
        .array()
        .iter()
        .map(|e| {
            let e = e.array();
            (
                String::from_utf8_lossy(&e[0].bytes()).into_owned(),
                String::from_utf8_lossy(&e[1].bytes()).into_owned(),
            )
        })
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// What [`populate`] left in the stream's groups, as a real replica reports it.
fn check_populated_groups(peer: Peer, replica: &Proc) {
    assert_eq!(
        groups(replica, 0, "stream"),
        vec![
            ("grp".into(), 1, "3-0".into(), 1),
            ("late".into(), 0, "4-0".into(), 0)
        ],
        "[{peer}] consumer groups after the full sync"
    );
    assert_eq!(
        pending(replica, 0, "stream", "grp"),
        pairs(&[("3-0", "alice")]),
        "[{peer}]"
    );
    assert_eq!(
        groups(replica, 0, "empty-stream"),
        vec![("g".into(), 0, "0-0".into(), 0)],
        "[{peer}]"
    );
}

// ---------------------------------------------------------------------------------------------
// Full sync, then streaming of every write command

fn full_sync(peer: Peer, diskless: bool) {
    let m = master(&["--repl-diskless-sync", if diskless { "yes" } else { "no" }]);
    let mut mc = m.conn();
    populate(&mut mc);
    let r = follow(peer, &m, &[]);
    in_sync(peer, &m, &r, "full sync");
    check_populated_groups(peer, &r);
    assert_eq!(stat(&m, "sync_full"), 1);
    assert_eq!(stat(&m, "respsync_repl_snapshots"), 1);
    // The replica saw the transfer framed as the mode says: `$EOF:<mark>` when diskless, a
    // length when from disk.
    let log = r.log_text();
    let streamed = log.contains("receiving streamed RDB from");
    assert_eq!(
        streamed, diskless,
        "[{peer}] transfer mode in the log:\n{log}"
    );
    if !diskless {
        // "... bytes from master to disk" (Valkey: "from primary").
        assert!(
            log.contains("bytes from master to disk") || log.contains("bytes from primary to disk"),
            "[{peer}]\n{log}"
        );
    }
    stream_every_write(peer, &m, &r);
    assert_eq!(
        stat(&m, "sync_full"),
        1,
        "[{peer}] streaming must not resync"
    );
    assert_eq!(stat(&m, "respsync_repl_snapshots"), 1);
}

/// Every write command the example server has, step by step, checked after each step.
fn stream_every_write(peer: Peer, m: &Proc, r: &Proc) {
    let mut c = m.conn();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let at = (now_s + 100_000).to_string();
    let at_ms = ((now_s + 100_000) * 1000).to_string();

    // Strings.
    let mut cmds = vec![
        s(&["SET", "s:a", "1"]),
        s(&["SET", "s:ex", "v", "EX", "1000"]),
        s(&["SET", "s:px", "v", "PX", "1000000"]),
        s(&["SET", "s:exat", "v", "EXAT", &at]),
        s(&["SET", "s:pxat", "v", "PXAT", &at_ms]),
        s(&["SET", "s:ex", "v2", "KEEPTTL"]),
        s(&["SET", "s:nx", "v", "NX"]),
        s(&["SET", "s:nx", "other", "NX"]),
        s(&["SET", "s:nx", "w", "XX"]),
        s(&["SET", "s:absent", "w", "XX"]),
        s(&["SET", "s:px", "replaced", "GET"]),
        s(&["SETEX", "s:setex", "1000", "v"]),
        s(&["PSETEX", "s:psetex", "1000000", "v"]),
        s(&["SETNX", "s:setnx", "v"]),
        s(&["SETNX", "s:setnx", "again"]),
        s(&["GETSET", "s:a", "2"]),
        s(&["APPEND", "s:a", "-tail"]),
        s(&["APPEND", "s:append", "new"]),
        s(&["INCR", "s:n"]),
        s(&["INCRBY", "s:n", "41"]),
        s(&["DECR", "s:n"]),
        s(&["DECRBY", "s:n", "-100"]),
        s(&["MSET", "s:m1", "1", "s:m2", "2", "s:m3", "3"]),
        s(&["SET", "s:ex0", "gone soon", "EX", "1000"]),
    ];
    cmds.push(vec![
        b"SET".to_vec(),
        b"s:bin\x00\xff".to_vec(),
        vec![0, 13, 10, 255],
    ]);
    run(&mut c, &cmds);
    in_sync(peer, m, r, "strings");

    // Keys of any type, and the expire family.
    let step = vec![
        s(&["DEL", "s:m1", "s:absent"]),
        s(&["UNLINK", "s:m2", "s:m3"]),
        s(&["EXPIRE", "s:a", "1000"]),
        s(&["PEXPIRE", "s:n", "1000000"]),
        s(&["EXPIREAT", "s:append", &at]),
        s(&["PEXPIREAT", "s:setnx", &at_ms]),
        s(&["PERSIST", "s:ex"]),
        s(&["EXPIRE", "s:absent", "10"]),
        // A deadline in the past deletes the key, on the replica through the stream's DEL.
        s(&["EXPIRE", "s:ex0", "-1"]),
    ];
    run(&mut c, &step);
    let off = in_sync(peer, m, r, "keyspace and expire family");
    assert_eq!(r.conn().int(&["EXISTS", "s:ex0"]), 0, "[{peer}]");
    if peer == Peer::Redis62 {
        // EXPIRE's NX/XX/GT/LT options came with Redis 7.0: Redis 6.2 refuses the propagated
        // form (a replica checks arity before read-only, so it says so to a client too), and
        // a 6.2 replica of any master that accepts them diverges. Not sent to 6.2.
        let reply = r.conn().cmd(&["PEXPIREAT", "s:a", &at_ms, "GT"]);
        assert_eq!(
            reply,
            Frame::Error("ERR wrong number of arguments for 'pexpireat' command".into()),
            "[{peer}]"
        );
    } else {
        lines(
            &mut c,
            &[
                "EXPIRE s:a 2000 GT",
                "EXPIRE s:a 10 GT",
                "PEXPIRE s:persisted 5000 NX",
                "EXPIRE s:nx 3000 NX",
                "EXPIRE s:nx 4000 XX",
                "EXPIRE s:nx 100 LT",
            ],
        );
        assert!(in_sync(peer, m, r, "expire options") > off);
    }

    // Lists, sets, hashes, sorted sets.
    lines(
        &mut c,
        &[
            "LPUSH l:a x y z",
            "RPUSH l:a 1 2 3",
            "LPOP l:a",
            "RPOP l:a",
            "LPOP l:a 2",
            "RPOP l:a 5",
            "RPUSH l:b only",
            "RPOP l:b",
            "SADD t:a a b c 1",
            "SADD t:i 1 2 3",
            "SREM t:a a nope",
            "SREM t:i 1 2 3",
            "HSET h:a f1 v1 f2 v2 n 5",
            "HMSET h:a f3 v3",
            "HSETNX h:a f1 no",
            "HSETNX h:a f4 v4",
            "HINCRBY h:a n -7",
            "HINCRBY h:a m 3",
            "HDEL h:a f2 nope",
            "ZADD z:a 1 one 2 two 3 three",
            "ZADD z:a NX 9 one 4 four",
            "ZADD z:a XX 5 two 6 six",
            "ZADD z:a INCR 0.25 three",
            "ZADD z:a GT 0 one",
            "ZADD z:a LT 0 one",
            "ZADD z:a -inf low +inf high",
            "ZREM z:a four nope",
        ],
    );
    in_sync(peer, m, r, "lists, sets, hashes, zsets");

    // Streams: generated ids, approximate trimming, groups, reading, acking, claiming.
    let ids = lines(
        &mut c,
        &[
            "XADD x:s * n 1",
            "XADD x:s * n 2",
            "XADD x:s * n 3",
            "XADD x:s MAXLEN ~ 100 * n 4",
            "XADD x:s 99999999999999-0 n 5",
            "XADD x:t MAXLEN 2 * a 1",
            "XADD x:t MAXLEN 2 * a 2",
            "XADD x:t MAXLEN 2 * a 3",
        ],
    );
    let id = |i: usize| String::from_utf8_lossy(&ids[i].bytes()).into_owned();
    lines(
        &mut c,
        &[
            "XGROUP CREATE x:s g1 0",
            "XGROUP CREATE x:s g2 $",
            "XGROUP CREATE x:new g $ MKSTREAM",
            "XGROUP CREATECONSUMER x:s g1 carol",
            "XGROUP CREATECONSUMER x:s g1 dave",
            "XGROUP DELCONSUMER x:s g1 dave",
            "XGROUP CREATE x:s doomed 0",
            "XGROUP DESTROY x:s doomed",
            "XREADGROUP GROUP g1 alice COUNT 3 STREAMS x:s >",
            "XREADGROUP GROUP g1 bob STREAMS x:s >",
        ],
    );
    lines(
        &mut c,
        &[
            &format!("XACK x:s g1 {}", id(0)),
            &format!("XCLAIM x:s g1 carol 0 {}", id(1)),
            &format!("XDEL x:s {}", id(2)),
            &format!("XGROUP SETID x:s g2 {}", id(3)),
            "XREADGROUP GROUP g2 erin NOACK STREAMS x:s >",
        ],
    );
    in_sync(peer, m, r, "streams");
    assert_eq!(
        groups(r, 0, "x:s"),
        vec![
            ("g1".into(), 4, "99999999999999-0".into(), 3),
            ("g2".into(), 0, "99999999999999-0".into(), 1),
        ],
        "[{peer}] stream groups streamed"
    );
    let g1 = pending(r, 0, "x:s", "g1");
    let want = vec![
        (id(1), "carol".to_string()),
        (id(2), "alice".to_string()),
        (id(3), "bob".to_string()),
        ("99999999999999-0".to_string(), "bob".to_string()),
    ];
    assert_eq!(g1, want, "[{peer}] pending entries of g1");
    assert_eq!(r.conn().int(&["XLEN", "x:t"]), 2, "[{peer}] exact MAXLEN");

    // MULTI/EXEC across dbs, and writes in several dbs.
    lines(
        &mut c,
        &[
            "MULTI",
            "SET tx:a 1",
            "INCR tx:n",
            "SELECT 7",
            "SET tx:db7 seven",
            "RPUSH tx:list a b",
            "SELECT 0",
            "HSET tx:h f v",
            "EXEC",
        ],
    );
    lines(
        &mut c,
        &[
            "SELECT 2",
            "SET d2 two",
            "SADD d2set m",
            "SELECT 9",
            "ZADD d9 1 m",
            "SELECT 2",
            "APPEND d2 !",
            "SELECT 0",
            "SET back in0",
        ],
    );
    in_sync(peer, m, r, "MULTI/EXEC and several dbs");
    assert_eq!(r.conn().bulk_text(&["GET", "tx:a"]), "1", "[{peer}]");

    // Active expiry on the master: the key is deleted on the replica by the stream's DEL (a
    // replica never deletes expired keys itself, so DBSIZE counts the key until the DEL).
    let expired = stat(m, "expired_keys");
    let mut rc = r.conn();
    rc.ok(&["SELECT", "4"]);
    let before = rc.int(&["DBSIZE"]);
    lines(&mut c, &["SELECT 4", "SET short v PX 1500", "SELECT 0"]);
    // Offsets only: comparing the datasets here could outlast the TTL on a busy machine.
    offsets_equal(peer, m, r, "a key with a short TTL");
    assert_eq!(
        rc.int(&["DBSIZE"]),
        before + 1,
        "[{peer}] the key reached the replica"
    );
    wait_for(10, "the master to expire the key", || {
        stat(m, "expired_keys") > expired
    });
    in_sync(peer, m, r, "after the master expired the key");
    assert_eq!(
        rc.int(&["DBSIZE"]),
        before,
        "[{peer}] the DEL reached the replica"
    );

    // FLUSHDB, then FLUSHALL.
    lines(&mut c, &["SELECT 7", "FLUSHDB", "SELECT 0"]);
    in_sync(peer, m, r, "FLUSHDB");
    rc.ok(&["SELECT", "7"]);
    assert_eq!(rc.int(&["DBSIZE"]), 0, "[{peer}]");
    lines(&mut c, &["FLUSHALL", "SET after-flushall 1"]);
    in_sync(peer, m, r, "FLUSHALL");
    rc.ok(&["SELECT", "0"]);
    assert_eq!(rc.int(&["DBSIZE"]), 1, "[{peer}]");
}

// ---------------------------------------------------------------------------------------------
// Bulk data: snapshots slow enough to attach to

/// Three replicas that arrive within a few milliseconds share one disk snapshot.
fn shared_disk_snapshot(peer: Peer) {
    const N: usize = 100_000;
    let m = master(&["--repl-diskless-sync", "no"]);
    let mut mc = m.conn();
    populate(&mut mc);
    load_bulk(&mut mc, 1, N);
    let replicas: Vec<Proc> = (0..3).map(|_| Proc::start(peer, &[])).collect();
    let mut conns: Vec<Conn> = replicas.iter().map(Proc::conn).collect();
    let port = m.port.to_string();
    for c in &mut conns {
        c.send(&["REPLICAOF", "127.0.0.1", &port]);
    }
    for c in &mut conns {
        c.read();
    }
    for r in &replicas {
        offsets_equal(peer, &m, r, "three replicas, one snapshot");
    }
    assert_eq!(stat(&m, "sync_full"), 3, "[{peer}] three full syncs");
    assert_eq!(
        stat(&m, "respsync_repl_snapshots"),
        1,
        "[{peer}] one snapshot served all three replicas\n{}",
        m.log_text()
    );
    let refs: Vec<&Proc> = replicas.iter().collect();
    check_and_drop_bulk(peer, &m, &refs, 1, N);
    for r in &replicas {
        in_sync(peer, &m, r, "after FLUSHDB of the bulk keys");
        check_populated_groups(peer, r);
    }
}

/// A client writes throughout a full sync; the writes arrive after the snapshot.
fn writes_during_full_sync(peer: Peer, diskless: bool) {
    const N: usize = 60_000;
    let m = master(&["--repl-diskless-sync", if diskless { "yes" } else { "no" }]);
    let mut mc = m.conn();
    populate(&mut mc);
    load_bulk(&mut mc, 1, N);
    let stop = Arc::new(AtomicBool::new(false));
    let during = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, during, port) = (Arc::clone(&stop), Arc::clone(&during), m.port);
        std::thread::spawn(move || {
            let mut c = Conn::open(port);
            let mut probe = Conn::open(port);
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                let k = n.to_string();
                lines(
                    &mut c,
                    &[
                        "INCR w:count",
                        &format!("RPUSH w:log {k}"),
                        &format!("SET w:key:{} {k}", n % 500),
                        &format!("HSET w:hash f{} {k}", n % 50),
                        "SELECT 1",
                        &format!("SET bulk:{} rewritten-{k}", n * 7919 % N as u64),
                        "SELECT 0",
                    ],
                );
                n += 1;
                // Writes made while the replica is waiting for or loading the snapshot.
                let state = probe.info("replication", "slave0").unwrap_or_default();
                if state.contains("state=wait_bgsave") || state.contains("state=send_bulk") {
                    during.fetch_add(1, Ordering::Relaxed);
                }
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let r = follow(peer, &m, &[]);
    wait_for(30, "the replica's link to come up", || {
        r.info("replication", "master_link_status").as_deref() == Some("up")
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("writer thread");
    offsets_equal(peer, &m, &r, "writes during the full sync");
    let during = during.load(Ordering::Relaxed);
    assert!(
        during > 0,
        "[{peer}] no write happened while the snapshot was made or sent ({written} in all)"
    );
    let mut rc = r.conn();
    assert_eq!(
        rc.bulk_text(&["GET", "w:count"]),
        written.to_string(),
        "[{peer}]"
    );
    assert_eq!(
        rc.int(&["LLEN", "w:log"]),
        written as i64,
        "[{peer}] nothing lost"
    );
    assert_eq!(stat(&m, "sync_full"), 1);
    check_and_drop_bulk(peer, &m, &[&r], 1, N);
    in_sync(peer, &m, &r, "after FLUSHDB of the bulk keys");
}

// ---------------------------------------------------------------------------------------------
// Link loss

/// `CLIENT KILL TYPE master` on the real replica: it comes back with PSYNC and the example
/// answers `+CONTINUE`.
fn killed_link_continues(peer: Peer) {
    let m = master(&[]);
    let mut mc = m.conn();
    populate(&mut mc);
    let r = follow(peer, &m, &[]);
    in_sync(peer, &m, &r, "full sync");
    let partial = stat(&m, "sync_partial_ok");
    for round in 0..2 {
        assert_eq!(r.conn().int(&["CLIENT", "KILL", "TYPE", "master"]), 1);
        lines(
            &mut mc,
            &[
                &format!("SET after-kill {round}"),
                "INCR kills",
                "SELECT 5",
                "RPUSH l x",
                "SELECT 0",
            ],
        );
        wait_for(20, "a partial resync", || {
            stat(&m, "sync_partial_ok") == partial + round + 1
        });
        in_sync(peer, &m, &r, "after the partial resync");
    }
    assert_eq!(stat(&m, "sync_full"), 1, "[{peer}] no full sync");
    let log = r.log_text();
    assert_eq!(
        log.matches("Successful partial resynchronization").count(),
        2,
        "[{peer}] replica log:\n{log}"
    );
}

/// A replica stopped while more than the backlog is written comes back to a full resync.
fn backlog_overflow(peer: Peer) {
    let m = master(&["--repl-backlog-size", "16kb"]);
    let mut mc = m.conn();
    populate(&mut mc);
    let r = follow(peer, &m, &[]);
    in_sync(peer, &m, &r, "full sync");
    let (full, err) = (stat(&m, "sync_full"), stat(&m, "sync_partial_err"));
    r.signal("-STOP");
    assert_eq!(mc.int(&["CLIENT", "KILL", "TYPE", "replica"]), 1);
    let cmds: Vec<_> = (0..400)
        .map(|i| s(&["SET", &format!("flood:{}", i % 50), &"x".repeat(200 + i)]))
        .collect();
    run(&mut mc, &cmds);
    r.signal("-CONT");
    wait_for(20, "a full resync", || stat(&m, "sync_full") == full + 1);
    in_sync(peer, &m, &r, "after the full resync");
    assert_eq!(
        stat(&m, "sync_partial_err"),
        err + 1,
        "[{peer}] the PSYNC was refused"
    );
    let log = r.log_text();
    assert!(
        log.contains("Trying a partial resynchronization"),
        "[{peer}] the replica tried PSYNC first:\n{log}"
    );
}

/// A replica stopped longer than the output-buffer limit allows is dropped, and catches up
/// after SIGCONT.
fn output_buffer_limit_drop(peer: Peer) {
    let m = master(&[
        "--repl-backlog-size",
        "16kb",
        "--client-output-buffer-limit",
        "replica 64kb 32kb 2",
    ]);
    let mut mc = m.conn();
    populate(&mut mc);
    let r = follow(peer, &m, &[]);
    in_sync(peer, &m, &r, "full sync");
    r.signal("-STOP");
    // Kernel socket buffers take a few MB before anything queues in the master.
    let value = "y".repeat(64 * 1024);
    let mut written = 0usize;
    while stat(&m, "respsync_repl_obuf_drops") == 0 {
        assert!(
            written < 256 << 20,
            "[{peer}] never dropped after {written} bytes\n{}",
            m.log_text()
        );
        let cmds: Vec<_> = (0..16)
            .map(|i| s(&["SET", &format!("blob:{}", i % 8), &value]))
            .collect();
        run(&mut mc, &cmds);
        written += 16 * value.len();
    }
    r.signal("-CONT");
    lines(&mut mc, &["SET after-drop 1"]);
    in_sync(peer, &m, &r, "after the drop");
    assert_eq!(
        stat(&m, "respsync_repl_obuf_drops"),
        1,
        "[{peer}] master log:\n{}\nreplica log:\n{}",
        m.log_text(),
        r.log_text()
    );
    assert!(
        stat(&m, "sync_full") >= 2,
        "[{peer}] came back with a full sync"
    );
}

/// A replica that stops acknowledging is dropped after `repl-timeout`, and comes back with a
/// partial resync.
fn silent_replica_times_out(peer: Peer) {
    let m = master(&["--repl-timeout", "2"]);
    let mut mc = m.conn();
    populate(&mut mc);
    let r = follow(peer, &m, &[]);
    in_sync(peer, &m, &r, "full sync");
    let partial = stat(&m, "sync_partial_ok");
    r.signal("-STOP");
    lines(&mut mc, &["SET while-silent 1", "RPUSH l a b"]);
    wait_for(10, "the master to time the replica out", || {
        stat(&m, "respsync_repl_timeout_drops") == 1
    });
    r.signal("-CONT");
    wait_for(20, "a partial resync", || {
        stat(&m, "sync_partial_ok") == partial + 1
    });
    in_sync(peer, &m, &r, "after the timeout");
    assert_eq!(stat(&m, "sync_full"), 1, "[{peer}] no full sync");
    assert!(
        m.log_text().contains("Timeout"),
        "[{peer}] the master said why:\n{}",
        m.log_text()
    );
}

// ---------------------------------------------------------------------------------------------
// Authentication

fn requirepass(peer: Peer) {
    let mut m = master(&["--requirepass", "s3cret"]);
    m.password = Some("s3cret".into());
    let mut mc = m.conn();
    populate(&mut mc);

    let good = follow(peer, &m, &["--masterauth", "s3cret"]);
    let wrong = follow(peer, &m, &["--masterauth", "wrong"]);
    let none = follow(peer, &m, &[]);
    in_sync(peer, &m, &good, "masterauth right");

    // Both others keep trying, and never get a byte of data.
    wait_for(10, "the wrong password to be refused", || {
        wrong.log_text().contains("WRONGPASS")
    });
    wait_for(10, "PSYNC to be refused without AUTH", || {
        none.log_text().contains("-NOAUTH")
    });
    for (r, what) in [(&wrong, "wrong masterauth"), (&none, "no masterauth")] {
        assert_eq!(
            r.info("replication", "master_link_status").as_deref(),
            Some("down"),
            "[{peer}] {what}"
        );
        assert_eq!(r.conn().int(&["DBSIZE"]), 0, "[{peer}] {what}");
    }
    // Redis: "Unable to AUTH to MASTER: -WRONGPASS ..."; Valkey says PRIMARY.
    let log = wrong.log_text();
    assert!(
        log.contains("Unable to AUTH to") && log.contains("WRONGPASS"),
        "[{peer}]\n{log}"
    );
    assert_eq!(
        stat(&m, "sync_full"),
        1,
        "[{peer}] only the right password synced"
    );

    // Fixing the password at run time brings the link up.
    wrong.conn().ok(&["CONFIG", "SET", "masterauth", "s3cret"]);
    in_sync(peer, &m, &wrong, "masterauth fixed");
}

// ---------------------------------------------------------------------------------------------
// redis-cli --rdb

/// `redis-cli --rdb FILE` against the example: `redis-check-rdb` accepts the file, and every
/// peer loads it to data equal to the example's.
fn redis_cli_rdb(diskless: bool) {
    let m = master(&["--repl-diskless-sync", if diskless { "yes" } else { "no" }]);
    let mut mc = m.conn();
    populate(&mut mc);
    let dir = support::TempDir::new("cli-rdb");
    let file = dir.0.join("got.rdb");
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &m.port.to_string(), "--rdb"])
        .arg(&file)
        .output()
        .expect("run redis-cli");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "redis-cli --rdb failed: {text}");
    assert!(text.contains("Transfer finished with success"), "{text}");
    let check = Command::new("redis-check-rdb")
        .arg(&file)
        .output()
        .expect("run redis-check-rdb");
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(
        check.status.success() && report.contains("RDB looks OK!"),
        "redis-check-rdb refused the file:\n{report}"
    );
    let bytes = std::fs::read(&file).expect("read the rdb");
    for peer in Peer::ALL {
        let loaded = Proc::try_peer_loading(&peer.binary(), &[], Some(&bytes))
            .unwrap_or_else(|e| panic!("[{peer}] did not load the file: {e}"));
        assert_same_data(&m, &loaded);
        check_populated_groups(peer, &loaded);
    }
}

#[test]
fn redis_cli_rdb_disk() {
    redis_cli_rdb(false);
}

#[test]
fn redis_cli_rdb_diskless() {
    redis_cli_rdb(true);
}

macro_rules! peer_tests {
    ($module:ident, $peer:ident) => {
        mod $module {
            use super::*;
            const PEER: Peer = Peer::$peer;

            #[test]
            fn full_sync_disk_and_streaming() {
                full_sync(PEER, false);
            }
            #[test]
            fn full_sync_diskless_and_streaming() {
                full_sync(PEER, true);
            }
            #[test]
            fn three_replicas_share_one_disk_snapshot() {
                shared_disk_snapshot(PEER);
            }
            #[test]
            fn writes_during_diskless_full_sync() {
                writes_during_full_sync(PEER, true);
            }
            #[test]
            fn writes_during_disk_full_sync() {
                writes_during_full_sync(PEER, false);
            }
            #[test]
            fn silent_replica_times_out_and_continues() {
                silent_replica_times_out(PEER);
            }
            #[test]
            fn client_kill_master_heals_with_continue() {
                killed_link_continues(PEER);
            }
            #[test]
            fn backlog_overflow_leads_to_full_resync() {
                backlog_overflow(PEER);
            }
            #[test]
            fn output_buffer_limit_drops_and_catches_up() {
                output_buffer_limit_drop(PEER);
            }
            #[test]
            fn requirepass_with_masterauth_right_and_wrong() {
                requirepass(PEER);
            }
        }
    };
}

peer_tests!(redis62, Redis62);
peer_tests!(redis70, Redis70);
peer_tests!(redis82, Redis82);
peer_tests!(valkey81, Valkey81);
