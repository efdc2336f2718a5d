//! The example server as the replica of real masters that use a two-connection full sync:
//! Redis 8.2 (rdb channel, on by default) and Valkey 8.1 (dual channel, with
//! `dual-channel-replication-enabled yes` on both sides); and the one-connection fallback
//! against Redis 6.2 and 7.0 masters, which ignore the capability.
//!
//! Every sync is slowed on the master (`DEBUG POPULATE` and `rdb-key-save-delay`) so that
//! writes land during the transfer; the data is compared key by key and the offsets must be
//! equal. The master's log proves which protocol was used. A link cut on either connection
//! in the middle of the transfer (`CLIENT KILL ID` on the master) must be survived.

mod support;

use std::time::{Duration, Instant};

use support::{assert_same_data, populate, run, s, wait_for, wait_in_sync, Conn, Peer, Proc};

/// Keys added with `DEBUG POPULATE`, and the master's sleep per key while it writes the
/// snapshot: a transfer of about 2 s.
const KEYS: u64 = 20_000;
const DELAY_US: u64 = 100;

fn start_master(peer: Peer) -> Proc {
    // (Redis 6.2 has DEBUG on, without the option.)
    let mut args = match peer {
        Peer::Redis62 => vec![],
        _ => vec!["--enable-debug-command", "yes"],
    };
    if peer == Peer::Valkey81 {
        args.extend(["--dual-channel-replication-enabled", "yes"]);
    }
    let m = Proc::start(peer, &args);
    let mut c = m.conn();
    populate(&mut c);
    c.run(&format!("DEBUG POPULATE {KEYS} pop 16"));
    c.run(&format!("CONFIG SET rdb-key-save-delay {DELAY_US}"));
    m
}

fn start_replica(master: &Proc, peer: Peer) -> Proc {
    let port = master.port.to_string();
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    if peer == Peer::Valkey81 {
        args.extend(["--dual-channel-replication-enabled", "yes"]);
    }
    Proc::example(&args)
}

/// One round of writes of several kinds in two dbs.
fn write(c: &mut Conn, i: u64) {
    let n = i.to_string();
    run(
        c,
        &[
            s(&["SET", &format!("w:{n}"), &n]),
            s(&["INCR", "counter"]),
            s(&["RPUSH", "wlist", &n]),
            s(&["HSET", "whash", &format!("f{}", i % 50), &n]),
            s(&["DEL", &format!("pop:{}", i * 7 % KEYS)]),
            s(&["MULTI"]),
            s(&["SELECT", "2"]),
            s(&["SADD", "wset", &n]),
            s(&["EXEC"]),
            s(&["SELECT", "0"]),
        ],
    );
}

fn bgsave_running(c: &mut Conn) -> bool {
    c.info_i64("persistence", "rdb_bgsave_in_progress") == 1
}

/// Writes until the replica's link is up; returns how many rounds ran while the master's
/// snapshot child was running (the transfer).
fn write_through_sync(master: &Proc, replica: &Proc, start: u64) -> (u64, u64) {
    let mut c = master.conn();
    let mut rc = replica.conn();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut i, mut during) = (start, 0);
    loop {
        let forking = bgsave_running(&mut c);
        write(&mut c, i);
        i += 1;
        during += u64::from(forking);
        if !forking && rc.info("replication", "master_link_status").as_deref() == Some("up") {
            return (i, during);
        }
        assert!(
            Instant::now() < deadline,
            "no sync within 60 s\nreplica log:\n{}",
            replica.log_text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The last lines of both logs, for failure messages.
fn logs(master: &Proc, replica: &Proc) -> String {
    let tail = |t: String| {
        let lines: Vec<_> = t.lines().map(str::to_string).collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };
    format!(
        "master log:\n{}\nreplica log:\n{}",
        tail(master.log_text()),
        tail(replica.log_text())
    )
}

/// The master's log lines that show a two-connection sync was served.
fn two_channel_lines(peer: Peer, log: &str) -> usize {
    let needle = match peer {
        Peer::Valkey81 => "dual channel",
        _ => "(rdb-channel)",
    };
    log.lines()
        .filter(|l| l.to_ascii_lowercase().contains(needle))
        .count()
}

fn finish(master: &Proc, replica: &Proc, next: u64) {
    master.conn().run("CONFIG SET rdb-key-save-delay 0");
    let mut c = master.conn();
    for i in next..next + 20 {
        write(&mut c, i);
    }
    wait_in_sync(master, replica);
    assert_same_data(master, replica);
    assert_eq!(
        master.info_i64("replication", "master_repl_offset"),
        replica.info_i64("replication", "slave_repl_offset")
    );
}

fn two_channel_sync(peer: Peer) {
    let master = start_master(peer);
    let replica = start_replica(&master, peer);
    let (next, during) = write_through_sync(&master, &replica, 0);
    assert!(during > 0, "no write landed during the transfer");
    finish(&master, &replica, next);
    let mlog = master.log_text();
    assert!(
        two_channel_lines(peer, &mlog) > 0,
        "the master did not use its two-connection sync\n{}",
        logs(&master, &replica)
    );
    assert_eq!(master.info_i64("stats", "sync_full"), 1);
    assert!(
        replica
            .log_text()
            .contains("PSYNC is not possible, initialize RDB channel."),
        "{}",
        logs(&master, &replica)
    );
}

#[test]
fn redis82_master_rdb_channel() {
    two_channel_sync(Peer::Redis82);
}

#[test]
fn valkey81_master_dual_channel() {
    two_channel_sync(Peer::Valkey81);
}

/// Which connection to cut.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cut {
    /// The main connection (A).
    Main,
    /// The connection that carries the snapshot (B).
    Rdb,
}

/// `CLIENT LIST TYPE replica` (plus Valkey's still plain main connection): (id, flags, line).
fn clients(c: &mut Conn) -> Vec<(u64, String, String)> {
    c.bulk_text(&["CLIENT", "LIST"])
        .lines()
        .filter_map(|l| {
            let field = |k: &str| {
                l.split(' ')
                    .find_map(|f| f.strip_prefix(&format!("{k}=")).map(str::to_string))
            };
            let id = field("id")?.parse().ok()?;
            Some((id, field("flags")?, l.to_string()))
        })
        .collect()
}

/// The master's client id of the connection to cut, once the transfer is under way.
fn find(peer: Peer, c: &mut Conn, cut: Cut) -> Option<u64> {
    let all = clients(c);
    // B: the rdb-channel replica; A: the replica (or PSYNC/SYNC client) that is not B.
    let is_b = |line: &str, flags: &str| match peer {
        Peer::Valkey81 => line.contains("cmd=sync") && flags.contains('S'),
        _ => flags.contains('C') && flags.contains('S'),
    };
    let b = all.iter().find(|(_, f, l)| is_b(l, f))?.0;
    match cut {
        Cut::Rdb => Some(b),
        Cut::Main => all
            .iter()
            .find(|(id, f, l)| *id != b && (f.contains('S') || l.contains("cmd=psync")))
            .map(|x| x.0),
    }
}

fn cut_mid_transfer(peer: Peer, cut: Cut) {
    let master = start_master(peer);
    let mut c = master.conn();
    let replica = start_replica(&master, peer);
    // Wait for the transfer, write a little, then cut.
    let mut i = 0;
    let mut target = None;
    wait_for(30, "a transfer in progress", || {
        write(&mut c, i);
        i += 1;
        target = bgsave_running(&mut c)
            .then(|| find(peer, &mut c, cut))
            .flatten();
        target.is_some()
    });
    for _ in 0..10 {
        write(&mut c, i);
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let id = target.unwrap();
    eprintln!(
        "{peer} {cut:?}: killing {:?}",
        clients(&mut c).into_iter().find(|x| x.0 == id)
    );
    assert!(
        bgsave_running(&mut c),
        "the transfer ended before the cut\n{}",
        logs(&master, &replica)
    );
    assert_eq!(c.int(&["CLIENT", "KILL", "ID", &id.to_string()]), 1);
    // The replica gives up the attempt and syncs again, over two connections again.
    let (next, _) = write_through_sync(&master, &replica, i);
    finish(&master, &replica, next);
    let mlog = master.log_text();
    assert!(
        master.info_i64("stats", "sync_full") >= 2,
        "{}",
        logs(&master, &replica)
    );
    assert!(
        two_channel_lines(peer, &mlog) >= 2,
        "the retry did not use the two-connection sync\n{}",
        logs(&master, &replica)
    );
    // The example reports why it gave the attempt up.
    let why = match cut {
        Cut::Rdb => "replication link lost: rdb channel lost before the snapshot was complete",
        Cut::Main => "Connection with master lost.",
    };
    assert!(
        replica.log_text().contains(why),
        "{why}\n{}",
        logs(&master, &replica)
    );
}

#[test]
fn redis82_main_connection_cut_mid_transfer() {
    cut_mid_transfer(Peer::Redis82, Cut::Main);
}

#[test]
fn redis82_rdb_connection_cut_mid_transfer() {
    cut_mid_transfer(Peer::Redis82, Cut::Rdb);
}

#[test]
fn valkey81_main_connection_cut_mid_transfer() {
    cut_mid_transfer(Peer::Valkey81, Cut::Main);
}

#[test]
fn valkey81_rdb_connection_cut_mid_transfer() {
    cut_mid_transfer(Peer::Valkey81, Cut::Rdb);
}

/// Masters that do not know the capability answer `+FULLRESYNC`: one connection, as before.
fn one_connection_fallback(peer: Peer) {
    let master = start_master(peer);
    // Both capabilities offered.
    let port = master.port.to_string();
    let replica = Proc::example(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--dual-channel-replication-enabled",
        "yes",
    ]);
    let (next, during) = write_through_sync(&master, &replica, 0);
    assert!(during > 0, "no write landed during the transfer");
    finish(&master, &replica, next);
    assert_eq!(master.info_i64("stats", "sync_full"), 1);
    let rlog = replica.log_text();
    assert!(
        !rlog.contains("RDB channel") && !rlog.contains("rdb channel"),
        "{}",
        logs(&master, &replica)
    );
}

#[test]
fn redis62_master_ignores_the_capability() {
    one_connection_fallback(Peer::Redis62);
}

#[test]
fn redis70_master_ignores_the_capability() {
    one_connection_fallback(Peer::Redis70);
}
