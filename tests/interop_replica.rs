//! The example server as a replica of real `redis-server` 7.0 and `valkey-server` 8.1 masters.
//!
//! Each test starts its own master(s) and replica on free loopback ports with temp dirs (killed
//! on drop), and after every step compares the datasets key by key and checks that the
//! replica's `slave_repl_offset` equals the master's `master_repl_offset`.

mod support;

use respsync::resp::Frame;
use support::{assert_same_data, populate, run, s, wait_for, wait_in_sync, Conn, Proc};

/// Writes of many kinds, as the stream carries them (MULTI/EXEC, SELECT, expiries, ...).
fn write_more(c: &mut Conn, round: usize) {
    let r = round.to_string();
    run(
        c,
        &[
            s(&["SET", "str", &format!("changed-{r}")]),
            s(&["INCR", "int"]),
            s(&["INCRBY", "neg", "10"]),
            s(&["APPEND", "str", "-tail"]),
            s(&["LPUSH", "list", "head"]),
            s(&["RPOP", "list"]),
            s(&["SADD", "set", &format!("new-{r}")]),
            s(&["SREM", "set", "x"]),
            s(&["HSET", "hash", "f3", "v3"]),
            s(&["HINCRBY", "hash", "f2", "5"]),
            s(&["HDEL", "hash", "f1"]),
            s(&["ZADD", "zset", "INCR", "1.5", "a"]),
            s(&["ZREM", "zset", "c"]),
            s(&["XADD", "stream", "*", "round", &r]),
            s(&[
                "XREADGROUP",
                "GROUP",
                "grp",
                "bob",
                "STREAMS",
                "stream",
                ">",
            ]),
            s(&["EXPIRE", "key:1", "5000"]),
            s(&["PEXPIRE", "key:2", "9000000"]),
            s(&["PERSIST", "ttl"]),
            s(&["DEL", &format!("key:{}", 10 + round)]),
            s(&["UNLINK", &format!("key:{}", 50 + round)]),
            s(&["MULTI"]),
            s(&["SET", "tx", &r]),
            s(&["INCR", "txcount"]),
            s(&["EXEC"]),
            s(&["SELECT", "5"]),
            s(&["SET", "db5", &r]),
            s(&["MSET", "m1", "1", "m2", "2"]),
            s(&["GETSET", "m1", "one"]),
            s(&["SETEX", "sx", "1000", "v"]),
            s(&["SETNX", "nx", "v"]),
            s(&["HSETNX", "h5", "f", "v"]),
            s(&["SELECT", "0"]),
        ],
    );
}

fn replica_of(master: &Proc, extra: &[&str]) -> Proc {
    let port = master.port.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    args.extend_from_slice(extra);
    Proc::example(&args)
}

fn full_sync_then_stream(master: Proc) {
    let mut mc = master.conn();
    populate(&mut mc);
    let replica = replica_of(&master, &[]);
    wait_in_sync(&master, &replica);
    assert_same_data(&master, &replica);
    assert_eq!(master.info_i64("stats", "sync_full"), 1);

    for round in 0..3 {
        write_more(&mut mc, round);
        wait_in_sync(&master, &replica);
        assert_same_data(&master, &replica);
    }
    assert_eq!(
        master.info_i64("stats", "sync_full"),
        1,
        "streaming must not resync"
    );
    let log = replica.log_text();
    assert!(
        !log.contains("cannot apply"),
        "the replica met commands it cannot apply:\n{log}"
    );
    assert_eq!(
        replica.info_i64("stats", "respsync_unapplied_master_commands"),
        0
    );
}

#[test]
fn disk_full_sync_and_streaming() {
    full_sync_then_stream(Proc::redis(&["--repl-diskless-sync", "no"]));
}

#[test]
fn diskless_full_sync_and_streaming() {
    full_sync_then_stream(Proc::redis(&["--repl-diskless-sync", "yes"]));
}

#[test]
fn valkey_master_full_sync_and_streaming() {
    full_sync_then_stream(Proc::valkey(&["--repl-diskless-sync", "yes"]));
}

#[test]
fn valkey_master_disk_sync() {
    full_sync_then_stream(Proc::valkey(&["--repl-diskless-sync", "no"]));
}

#[test]
fn writes_are_refused_with_readonly() {
    let master = Proc::redis(&[]);
    let replica = replica_of(&master, &[]);
    wait_in_sync(&master, &replica);
    let mut rc = replica.conn();
    match rc.cmd(&["SET", "k", "v"]) {
        Frame::Error(e) => assert_eq!(
            &e[..],
            b"READONLY You can't write against a read only replica."
        ),
        f => panic!("expected READONLY, got {f:?}"),
    }
    // Reads work, and so do writes once the replica is made writable.
    assert!(matches!(rc.cmd(&["GET", "k"]), Frame::NullBulk));
    rc.ok(&["CONFIG", "SET", "replica-read-only", "no"]);
    assert!(matches!(rc.cmd(&["SET", "k", "v"]), Frame::SimpleString(_)));
}

#[test]
fn killed_link_heals_with_partial_resync() {
    let master = Proc::redis(&[]);
    let mut mc = master.conn();
    populate(&mut mc);
    let replica = replica_of(&master, &[]);
    wait_in_sync(&master, &replica);
    let full = master.info_i64("stats", "sync_full");
    let partial = master.info_i64("stats", "sync_partial_ok");

    // Writes while the link is down are sent on the partial resync.
    replica.signal("-STOP");
    assert_eq!(mc.int(&["CLIENT", "KILL", "TYPE", "replica"]), 1);
    write_more(&mut mc, 0);
    replica.signal("-CONT");

    wait_for(60, "a partial resync", || {
        master.info_i64("stats", "sync_partial_ok") == partial + 1
    });
    wait_in_sync(&master, &replica);
    assert_same_data(&master, &replica);
    assert_eq!(master.info_i64("stats", "sync_full"), full, "no full sync");

    // And once more, killed from the replica's side.
    let mut rc = replica.conn();
    assert_eq!(rc.int(&["CLIENT", "KILL", "TYPE", "master"]), 1);
    write_more(&mut mc, 1);
    wait_for(60, "a second partial resync", || {
        master.info_i64("stats", "sync_partial_ok") == partial + 2
    });
    wait_in_sync(&master, &replica);
    assert_same_data(&master, &replica);
    assert_eq!(master.info_i64("stats", "sync_full"), full, "no full sync");
}

#[test]
fn backlog_overflow_falls_back_to_full_sync() {
    let master = Proc::redis(&["--repl-backlog-size", "16kb"]);
    let mut mc = master.conn();
    populate(&mut mc);
    let replica = replica_of(&master, &[]);
    wait_in_sync(&master, &replica);
    let full = master.info_i64("stats", "sync_full");

    replica.signal("-STOP");
    assert_eq!(mc.int(&["CLIENT", "KILL", "TYPE", "replica"]), 1);
    let cmds: Vec<Vec<Vec<u8>>> = (0..400)
        .map(|i| s(&["SET", &format!("flood:{i}"), &"x".repeat(200)]))
        .collect();
    run(&mut mc, &cmds);
    replica.signal("-CONT");

    wait_for(60, "a full resync", || {
        master.info_i64("stats", "sync_full") == full + 1
    });
    wait_in_sync(&master, &replica);
    assert_same_data(&master, &replica);
}

#[test]
fn masterauth_right_and_wrong() {
    let mut master = Proc::redis(&["--requirepass", "s3cret"]);
    master.password = Some("s3cret".into());
    let mut mc = master.conn();
    mc.ok(&["SET", "guarded", "yes"]);
    mc.ok(&["ACL", "SETUSER", "repl", "on", ">replpw", "+@all", "~*"]);

    // Wrong password: the link never comes up, and the replica keeps trying.
    let replica = replica_of(&master, &["--masterauth", "wrong"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        replica.info("replication", "master_link_status").as_deref(),
        Some("down")
    );
    let mut rc = replica.conn();
    assert_eq!(rc.int(&["DBSIZE"]), 0);

    // Fixing the password at run time brings it up.
    rc.ok(&["CONFIG", "SET", "masterauth", "s3cret"]);
    wait_in_sync(&master, &replica);
    assert_eq!(rc.bulk_text(&["GET", "guarded"]), "yes");
    drop(replica);

    // An ACL user with --masteruser.
    let replica = replica_of(&master, &["--masteruser", "repl", "--masterauth", "replpw"]);
    wait_in_sync(&master, &replica);
    assert_eq!(replica.conn().bulk_text(&["GET", "guarded"]), "yes");
}

#[test]
fn replicaof_no_one_and_back() {
    let master = Proc::redis(&[]);
    let mut mc = master.conn();
    populate(&mut mc);
    let replica = replica_of(&master, &[]);
    wait_in_sync(&master, &replica);
    let mut rc = replica.conn();
    rc.ok(&["REPLICAOF", "NO", "ONE"]);
    assert_eq!(
        replica.info("replication", "role").as_deref(),
        Some("master")
    );
    rc.ok(&["SET", "local", "1"]);
    assert_eq!(rc.bulk_text(&["GET", "local"]), "1");

    let port = master.port.to_string();
    rc.ok(&["REPLICAOF", "127.0.0.1", &port]);
    wait_in_sync(&master, &replica);
    assert_same_data(&master, &replica);
}

/// The field names of INFO replication, in order.
fn info_fields(p: &Proc) -> Vec<String> {
    let text = p.conn().bulk_text(&["INFO", "replication"]);
    text.lines()
        .filter_map(|l| l.split(':').next())
        .filter(|k| !k.is_empty())
        .map(String::from)
        .collect()
}

#[test]
fn info_replication_matches_a_real_replica() {
    // Before any master answers: same fields, and Redis's placeholder offsets.
    let dead = support::free_port().to_string();
    let ours = Proc::example(&["--replicaof", "127.0.0.1", &dead]);
    let theirs = Proc::redis(&["--replicaof", "127.0.0.1", &dead]);
    assert_eq!(info_fields(&ours), info_fields(&theirs));
    for k in [
        "slave_repl_offset",
        "slave_read_repl_offset",
        "master_link_down_since_seconds",
    ] {
        assert_eq!(
            ours.info("replication", k),
            theirs.info("replication", k),
            "{k}"
        );
    }
    drop((ours, theirs));

    // Connected to the same master: same fields, same offsets.
    let master = Proc::redis(&[]);
    let mut mc = master.conn();
    mc.ok(&["SET", "a", "1"]);
    let ours = replica_of(&master, &[]);
    let port = master.port.to_string();
    let theirs = Proc::redis(&["--replicaof", "127.0.0.1", &port]);
    wait_in_sync(&master, &ours);
    wait_in_sync(&master, &theirs);
    assert_eq!(info_fields(&ours), info_fields(&theirs));
    for k in [
        "role",
        "master_link_status",
        "master_sync_in_progress",
        "slave_repl_offset",
        "slave_read_only",
        "master_replid",
    ] {
        assert_eq!(
            ours.info("replication", k),
            theirs.info("replication", k),
            "{k}"
        );
    }
    let role = |p: &Proc| match p.conn().cmd(&["ROLE"]) {
        Frame::Array(a) => a.len(),
        f => panic!("ROLE: {f:?}"),
    };
    assert_eq!(role(&ours), role(&theirs));
}

#[test]
fn link_cut_during_transfer_recovers() {
    let master = Proc::redis(&[
        "--repl-diskless-sync",
        "yes",
        "--enable-debug-command",
        "yes",
    ]);
    let mut mc = master.conn();
    populate(&mut mc);
    mc.ok(&["DEBUG", "POPULATE", "20000"]);
    // 100 µs per key: the snapshot takes about two seconds to stream.
    mc.ok(&["CONFIG", "SET", "rdb-key-save-delay", "100"]);
    let replica = replica_of(&master, &[]);
    wait_for(60, "the transfer to start", || {
        replica
            .info("replication", "master_sync_in_progress")
            .as_deref()
            == Some("1")
    });
    assert_eq!(
        replica.info("replication", "master_link_status").as_deref(),
        Some("down")
    );
    assert_eq!(replica.conn().int(&["CLIENT", "KILL", "TYPE", "master"]), 1);
    mc.ok(&["CONFIG", "SET", "rdb-key-save-delay", "0"]);
    wait_in_sync(&master, &replica);
    assert_same_data(&master, &replica);
    assert!(
        master.info_i64("stats", "sync_full") >= 2,
        "the cut transfer was restarted"
    );
}

#[test]
fn expired_keys_follow_the_master() {
    let master = Proc::redis(&[]);
    let mut mc = master.conn();
    let replica = replica_of(&master, &[]);
    wait_in_sync(&master, &replica);
    mc.ok(&["SET", "short", "v", "PX", "1500"]);
    mc.ok(&["SET", "long", "v", "EX", "1000"]);
    wait_in_sync(&master, &replica);
    let mut rc = replica.conn();
    assert_eq!(rc.int(&["EXISTS", "short", "long"]), 2);
    // Once expired, a replica reports the key missing even before the master's DEL arrives...
    std::thread::sleep(std::time::Duration::from_millis(1600));
    assert_eq!(rc.int(&["EXISTS", "short"]), 0);
    // ...and the DEL from the master's active expiry removes it for good.
    wait_for(10, "the master to expire the key", || {
        master.info_i64("stats", "expired_keys") == 1
    });
    wait_in_sync(&master, &replica);
    let keys = rc.cmd(&["KEYS", "*"]);
    assert_eq!(rc.int(&["DBSIZE"]), 1, "{keys:?} {}", replica.log_text());
    assert_same_data(&master, &replica);
}

/// A command the example cannot apply (`SETRANGE` is not in its table) is never dropped
/// silently. With the default policy (`stop`) the link stops right before it: what came
/// before is applied, nothing after it is, the command is counted and INFO says why.
#[test]
fn unknown_master_command_stops_the_link_before_it() {
    let master = Proc::redis(&[]);
    let replica = replica_of(&master, &[]);
    let mut mc = master.conn();
    mc.cmd(&["SET", "before", "1"]);
    wait_in_sync(&master, &replica);
    mc.cmd(&["SETRANGE", "before", "0", "x"]);
    mc.cmd(&["SET", "after", "2"]);
    wait_for(10, "the link to stop", || {
        replica
            .info("replication", "respsync_replication_stopped")
            .is_some()
    });
    let why = replica
        .info("replication", "respsync_replication_stopped")
        .unwrap_or_default();
    assert!(why.contains("'SETRANGE'"), "{why}");
    assert_eq!(
        replica.info_i64("stats", "respsync_unapplied_master_commands"),
        1
    );
    let mut rc = replica.conn();
    assert_eq!(rc.cmd(&["GET", "before"]), Frame::BulkString("1".into()));
    assert_eq!(rc.cmd(&["GET", "after"]), Frame::NullBulk);
    // The replica's offset ends right before the refused command.
    let applied = replica.info_i64("replication", "slave_repl_offset");
    let master_off = master.info_i64("replication", "master_repl_offset");
    assert!(applied < master_off, "{applied} < {master_off}");
}

/// With `replica-unknown-command-policy continue` the command is skipped, counted and logged,
/// and the stream goes on.
#[test]
fn unknown_master_command_skipped_loudly_with_continue() {
    let master = Proc::redis(&[]);
    let replica = replica_of(&master, &["--replica-unknown-command-policy", "continue"]);
    let mut mc = master.conn();
    mc.cmd(&["SET", "before", "1"]);
    // Streamed, not in the snapshot: the replica has synced before the unknown command.
    wait_in_sync(&master, &replica);
    mc.cmd(&["SETRANGE", "before", "0", "x"]);
    mc.cmd(&["SET", "after", "2"]);
    wait_in_sync(&master, &replica);
    let mut rc = replica.conn();
    assert_eq!(rc.cmd(&["GET", "before"]), Frame::BulkString("1".into()));
    assert_eq!(rc.cmd(&["GET", "after"]), Frame::BulkString("2".into()));
    assert_eq!(
        replica.info_i64("stats", "respsync_unapplied_master_commands"),
        1
    );
    assert!(replica.log_text().contains("cannot apply"));
}

/// Commands with many arguments (past the dispatcher's on-stack argument array) apply exactly,
/// alone and inside MULTI/EXEC.
#[test]
fn commands_with_many_arguments_apply() {
    let master = Proc::redis(&[]);
    let replica = replica_of(&master, &[]);
    wait_in_sync(&master, &replica);
    let mut mc = master.conn();
    let mut mset = vec!["MSET".to_string()];
    for i in 0..100 {
        mset.push(format!("m:{i}"));
        mset.push(format!("v{i}"));
    }
    mc.cmd(&mset);
    let mut rpush = vec!["RPUSH".to_string(), "list".to_string()];
    rpush.extend((0..500).map(|i| format!("e{i}")));
    let mut hset = vec!["HSET".to_string(), "hash".to_string()];
    for i in 0..200 {
        hset.push(format!("f{i}"));
        hset.push(format!("x{i}"));
    }
    let mut sadd = vec!["SADD".to_string(), "set".to_string()];
    sadd.extend((0..300).map(|i| format!("s{i}")));
    mc.cmd(&["MULTI"]);
    for c in [&rpush, &hset, &sadd] {
        mc.cmd(c);
    }
    mc.cmd(&["EXEC"]);
    wait_in_sync(&master, &replica);
    assert_same_data(&master, &replica);
    assert_eq!(
        replica.info_i64("stats", "respsync_unapplied_master_commands"),
        0
    );
}
