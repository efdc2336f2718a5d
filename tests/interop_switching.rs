//! Non-stop switching with real servers (issue 9): promotions and demotions that continue with
//! PSYNC2 in both directions, a chain through the example server, FAILOVER both ways, WAIT,
//! min-replicas, stale-data refusals, and restarts from the example's own RDB.
//!
//! The scenarios reproduce, in our own words, the upstream tests listed in protocol.md §12
//! (psync2-pingoff, psync2-master-restart, failover, wait, replication-2/4). Every server runs on
//! 127.0.0.1 in its own temp dir and is killed on drop. "Partial" is always checked on the
//! serving side (`sync_partial_ok` +1 and `sync_full` unchanged) and, for real replicas, in
//! their log. Each scenario runs against Redis 6.2, 7.0, 8.2 and Valkey 8.1.

mod support;

use std::time::{Duration, Instant};

use respsync::resp::Frame;
use support::{assert_same_data, wait_for, wait_in_sync, Conn, Peer, Proc};

const NO_DELAY: [&str; 2] = ["--repl-diskless-sync-delay", "0"];

/// What a real replica logs once its master accepted a PSYNC (Redis and Valkey alike).
const PARTIAL_LOG: &str = "Successful partial resynchronization";

/// One `#[test]` per peer for a scenario taking a [`Peer`].
macro_rules! per_peer {
    ($scenario:ident: $($test:ident => $peer:ident),+ $(,)?) => {
        $(
            #[test]
            fn $test() {
                $scenario(Peer::$peer);
            }
        )+
    };
}

fn argv(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

/// A few writes of several types in databases 0 and 2, under `tag`, in one pipeline.
fn write_batch(c: &mut Conn, tag: &str, n: usize) {
    let mut cmds = Vec::new();
    for i in 0..n {
        cmds.push(argv(&["SET", &format!("{tag}:s{i}"), &format!("v{i}")]));
        cmds.push(argv(&["RPUSH", &format!("{tag}:list"), &i.to_string()]));
    }
    cmds.push(argv(&["HSET", &format!("{tag}:hash"), "f", "v", "g", "w"]));
    cmds.push(argv(&["INCRBY", &format!("{tag}:counter"), "7"]));
    cmds.push(argv(&["SELECT", "2"]));
    cmds.push(argv(&["SADD", &format!("{tag}:set"), "a", "b", "c"]));
    cmds.push(argv(&["SET", &format!("{tag}:ttl"), "x", "EX", "1000"]));
    cmds.push(argv(&["SELECT", "0"]));
    c.pipeline_ok(&cmds);
}

fn field(p: &Proc, section: &str, name: &str) -> String {
    p.info(section, name)
        .unwrap_or_else(|| panic!("INFO {section} has no {name}"))
}

fn stat(p: &Proc, name: &str) -> i64 {
    p.info_i64("stats", name)
}

fn role(p: &Proc) -> String {
    field(p, "replication", "role")
}

fn replid(p: &Proc) -> String {
    field(p, "replication", "master_replid")
}

fn offset(p: &Proc) -> i64 {
    p.info_i64("replication", "master_repl_offset")
}

fn port_arg(p: &Proc) -> String {
    p.port.to_string()
}

/// A real replica of `master`.
fn real_replica_of(peer: Peer, master: &Proc, extra: &[&str]) -> Proc {
    let port = port_arg(master);
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    args.extend_from_slice(extra);
    Proc::start(peer, &args)
}

/// An example replica of `master`.
fn example_replica_of(master: &Proc, extra: &[&str]) -> Proc {
    let port = port_arg(master);
    let mut args = vec!["--replicaof", "127.0.0.1", &port];
    args.extend_from_slice(&NO_DELAY);
    args.extend_from_slice(extra);
    Proc::example(&args)
}

fn text(f: &Frame) -> String {
    match f {
        Frame::Error(b) | Frame::SimpleString(b) | Frame::BulkString(b) => {
            String::from_utf8_lossy(b).into_owned()
        }
        other => format!("{other:?}"),
    }
}

fn error_of(f: Frame) -> String {
    match f {
        Frame::Error(e) => String::from_utf8_lossy(&e).into_owned(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Both in the same history: same data, same replid, same offset.
fn assert_converged(master: &Proc, replica: &Proc) {
    wait_in_sync(master, replica);
    assert_same_data(master, replica);
    assert_eq!(replid(master), replid(replica), "one replid");
    assert_eq!(offset(master), offset(replica), "equal offsets");
}

// ------------------------------------------------------------------ promotion and demotion

/// Example master A, real replica B. B is promoted (`REPLICAOF NO ONE`) and takes writes; A
/// then follows B and continues partially through B's replid2 (psync2-pingoff's "make the old
/// master a replica of the new one").
fn promoted_real_replica_takes_back_example_master(peer: Peer) {
    let a = Proc::example(&NO_DELAY);
    let b = real_replica_of(peer, &a, &[]);
    write_batch(&mut a.conn(), "before", 30);
    assert_converged(&a, &b);
    let (old_id, old_off) = (replid(&a), offset(&a));

    b.conn().run("REPLICAOF NO ONE");
    assert_eq!(role(&b), "master");
    assert_eq!(field(&b, "replication", "master_replid2"), old_id);
    assert_eq!(b.info_i64("replication", "second_repl_offset"), old_off + 1);
    assert_ne!(replid(&b), old_id, "a promotion takes a new id");
    write_batch(&mut b.conn(), "after", 10);
    let (ok0, full0) = (stat(&b, "sync_partial_ok"), stat(&b, "sync_full"));
    assert_eq!(full0, 0);

    let bport = port_arg(&b);
    let reply = a.conn().cmd(&["REPLICAOF", "127.0.0.1", &bport]);
    assert_eq!(text(&reply), "OK");
    assert_converged(&b, &a);
    assert_eq!(
        stat(&b, "sync_partial_ok"),
        ok0 + 1,
        "A continued partially"
    );
    assert_eq!(stat(&b, "sync_full"), 0, "no full sync");
    // The demoted example now refuses writes and keeps following.
    let refused = error_of(a.conn().cmd(&["SET", "k", "v"]));
    assert_eq!(
        refused,
        "READONLY You can't write against a read only replica."
    );
    write_batch(&mut b.conn(), "later", 5);
    assert_converged(&b, &a);
}

per_peer! { promoted_real_replica_takes_back_example_master:
    promoted_replica_takes_back_example_master_redis70 => Redis70,
    promoted_replica_takes_back_example_master_redis62 => Redis62,
    promoted_replica_takes_back_example_master_redis82 => Redis82,
    promoted_replica_takes_back_example_master_valkey81 => Valkey81,
}

/// The mirror: real master C, example replica D. D is promoted; C follows D and says in its log
/// that D accepted its PSYNC.
fn promoted_example_takes_back_real_master(peer: Peer) {
    let c = Proc::start(peer, &[]);
    let d = example_replica_of(&c, &[]);
    write_batch(&mut c.conn(), "before", 30);
    assert_converged(&c, &d);
    let (old_id, old_off) = (replid(&c), offset(&c));
    // Same master again: nothing changes.
    let cport = port_arg(&c);
    let again = d.conn().cmd(&["REPLICAOF", "127.0.0.1", &cport]);
    assert_eq!(text(&again), "OK Already connected to specified master");

    d.conn().run("REPLICAOF NO ONE");
    assert_eq!(role(&d), "master");
    assert_eq!(field(&d, "replication", "master_replid2"), old_id);
    assert_eq!(d.info_i64("replication", "second_repl_offset"), old_off + 1);
    write_batch(&mut d.conn(), "after", 10);

    let dport = port_arg(&d);
    c.conn().run(&format!("REPLICAOF 127.0.0.1 {dport}"));
    assert_converged(&d, &c);
    wait_for(10, "C's log to report a partial resync", || {
        c.log_text().contains(PARTIAL_LOG)
    });
    assert_eq!(stat(&d, "sync_partial_ok"), 1, "C continued partially");
    assert_eq!(stat(&d, "sync_full"), 0);
    write_batch(&mut d.conn(), "later", 5);
    assert_converged(&d, &c);
}

per_peer! { promoted_example_takes_back_real_master:
    promoted_example_takes_back_real_master_redis70 => Redis70,
    promoted_example_takes_back_real_master_redis62 => Redis62,
    promoted_example_takes_back_real_master_redis82 => Redis82,
    promoted_example_takes_back_real_master_valkey81 => Valkey81,
}

// ------------------------------------------------------------------ chain

/// Real master M → example replica E → real sub-replica S.
fn chain_through_example(peer: Peer) {
    let m = Proc::start(peer, &[]);
    write_batch(&mut m.conn(), "seed", 20);
    let e = example_replica_of(&m, &[]);
    wait_in_sync(&m, &e);
    let s = real_replica_of(peer, &e, &[]);
    write_batch(&mut m.conn(), "chain", 20);
    wait_in_sync(&m, &e);
    assert_converged(&e, &s);
    assert_same_data(&m, &s);
    assert_eq!(replid(&m), replid(&s), "one replid end to end");
    assert_eq!(offset(&m), offset(&s), "one offset end to end");
    assert_eq!(stat(&e, "sync_full"), 1, "S synced fully once");
    let (m_ok, m_full) = (stat(&m, "sync_partial_ok"), stat(&m, "sync_full"));

    // Cut the middle link: E continues partially; S is not even disconnected (7.0 rules).
    let killed = e.conn().cmd(&["CLIENT", "KILL", "TYPE", "master"]);
    assert_eq!(killed, Frame::Integer(1));
    write_batch(&mut m.conn(), "cut1", 10);
    wait_for(10, "E to continue with M", || {
        stat(&m, "sync_partial_ok") == m_ok + 1
    });
    wait_in_sync(&m, &e);
    assert_converged(&e, &s);
    assert_eq!(stat(&m, "sync_full"), m_full, "E did not sync fully");
    assert_eq!(stat(&e, "sync_full"), 1, "S did not sync fully");
    assert_eq!(stat(&e, "sync_partial_ok"), 0, "S kept its link");
    assert_eq!(offset(&m), offset(&s));

    // Keep the middle link down (M frozen while E reconnects), and make S reconnect
    // meanwhile: E refuses it with -NOMASTERLINK until its own link is back.
    m.signal("-STOP");
    let killed = e.conn().cmd(&["CLIENT", "KILL", "TYPE", "master"]);
    assert_eq!(killed, Frame::Integer(1));
    wait_for(5, "E's link to go down", || {
        field(&e, "replication", "master_link_status") == "down"
    });
    let killed = s.conn().cmd(&["CLIENT", "KILL", "TYPE", "master"]);
    assert_eq!(killed, Frame::Integer(1));
    wait_for(10, "S to be refused with -NOMASTERLINK", || {
        s.log_text()
            .contains("-NOMASTERLINK Can't SYNC while not connected with my master")
    });
    assert_eq!(field(&s, "replication", "master_link_status"), "down");
    m.signal("-CONT");
    write_batch(&mut m.conn(), "cut2", 10);
    wait_for(10, "E to continue with M again", || {
        stat(&m, "sync_partial_ok") == m_ok + 2
    });
    wait_in_sync(&m, &e);
    assert_converged(&e, &s);
    assert_eq!(stat(&e, "sync_partial_ok"), 1, "S continued partially");
    assert_eq!(stat(&e, "sync_full"), 1, "S did not sync fully");
    assert_eq!(stat(&m, "sync_full"), m_full, "E did not sync fully");
    assert_same_data(&m, &s);
    assert_eq!(replid(&m), replid(&s));
    assert_eq!(offset(&m), offset(&s));
}

per_peer! { chain_through_example:
    chain_through_example_redis70 => Redis70,
    chain_through_example_redis62 => Redis62,
    chain_through_example_redis82 => Redis82,
    chain_through_example_valkey81 => Valkey81,
}

// ------------------------------------------------------------------ FAILOVER

fn wait_failover_done(old: &Proc, new: &Proc) {
    wait_for(15, "the roles to swap", || {
        role(new) == "master"
            && role(old) == "slave"
            && field(old, "replication", "master_link_status") == "up"
            && field(old, "replication", "master_failover_state") == "no-failover"
    });
    assert_eq!(
        field(old, "replication", "master_port"),
        new.port.to_string()
    );
}

/// `FAILOVER TO` from an example master to a real replica.
fn failover_from_example_master(peer: Peer) {
    let a = Proc::example(&NO_DELAY);
    let b = real_replica_of(peer, &a, &[]);
    write_batch(&mut a.conn(), "before", 30);
    assert_converged(&a, &b);
    assert_eq!(
        field(&a, "replication", "master_failover_state"),
        "no-failover"
    );
    let bport = port_arg(&b);
    let reply = a.conn().cmd(&["FAILOVER", "TO", "127.0.0.1", &bport]);
    assert_eq!(text(&reply), "OK");
    wait_failover_done(&a, &b);
    assert_eq!(stat(&b, "sync_partial_ok"), 1, "A continued partially");
    assert_eq!(stat(&b, "sync_full"), 0);
    write_batch(&mut b.conn(), "after", 10);
    assert_converged(&b, &a);
    let refused = error_of(a.conn().cmd(&["SET", "k", "v"]));
    assert_eq!(
        refused,
        "READONLY You can't write against a read only replica."
    );
}

per_peer! { failover_from_example_master:
    failover_from_example_master_redis70 => Redis70,
    failover_from_example_master_redis62 => Redis62,
    failover_from_example_master_redis82 => Redis82,
    failover_from_example_master_valkey81 => Valkey81,
}

/// `FAILOVER TO` from a real master to an example replica (which gets `PSYNC … FAILOVER`).
fn failover_to_example_replica(peer: Peer) {
    let c = Proc::start(peer, &[]);
    let d = example_replica_of(&c, &[]);
    write_batch(&mut c.conn(), "before", 30);
    assert_converged(&c, &d);
    let dport = port_arg(&d);
    // On a loaded machine the real master may still be putting its replica online after the
    // offsets met: ask again until it accepts.
    wait_for(
        10,
        "the real master to accept FAILOVER TO the example",
        || {
            let reply = c.conn().cmd(&["FAILOVER", "TO", "127.0.0.1", &dport]);
            text(&reply) == "OK"
        },
    );
    wait_failover_done(&c, &d);
    assert_eq!(stat(&d, "sync_partial_ok"), 1, "C continued partially");
    assert_eq!(stat(&d, "sync_full"), 0);
    wait_for(10, "C's log to report a partial resync", || {
        c.log_text().contains(PARTIAL_LOG)
    });
    write_batch(&mut d.conn(), "after", 10);
    assert_converged(&d, &c);
}

per_peer! { failover_to_example_replica:
    failover_to_example_replica_redis70 => Redis70,
    failover_to_example_replica_redis62 => Redis62,
    failover_to_example_replica_redis82 => Redis82,
    failover_to_example_replica_valkey81 => Valkey81,
}

/// Every FAILOVER refusal answered as real Redis 7.0 answers it: the example master and a real
/// one side by side, first without replicas, then each with one real replica, then on replicas.
#[test]
fn failover_errors_match_redis70() {
    let ours = Proc::example(&NO_DELAY);
    let theirs = Proc::start(Peer::Redis70, &[]);
    let compare = |cases: &[Vec<String>]| {
        for case in cases {
            let a = ours.conn().cmd(case);
            let b = theirs.conn().cmd(case);
            assert!(
                matches!(b, Frame::Error(_)),
                "{case:?}: Redis 7.0 accepted it: {b:?}"
            );
            assert_eq!(text(&a), text(&b), "{case:?}");
        }
    };
    let words = |s: &str| -> Vec<String> { s.split(' ').map(str::to_owned).collect() };
    let no_replicas: Vec<Vec<String>> = [
        "FAILOVER",
        "FAILOVER TO 127.0.0.1 6",
        "FAILOVER ABORT",
        "FAILOVER TIMEOUT 0",
        "FAILOVER TIMEOUT -5",
        "FAILOVER TIMEOUT abc",
        "FAILOVER FORCE",
        "FAILOVER TO 127.0.0.1 6 FORCE",
        "FAILOVER FORCE TIMEOUT 100",
        "FAILOVER TO 127.0.0.1 notaport",
        "FAILOVER TO 127.0.0.1 70000",
        "FAILOVER BOGUS",
        "FAILOVER TO 127.0.0.1",
        "FAILOVER ABORT TIMEOUT 10",
        "FAILOVER ABORT TIMEOUT 0",
        "FAILOVER ABORT ABORT",
        "FAILOVER TIMEOUT 10 TIMEOUT 20",
        "FAILOVER FORCE FORCE",
        "FAILOVER TO 127.0.0.1 1 TO 127.0.0.1 2",
    ]
    .iter()
    .map(|s| words(s))
    .collect();
    compare(&no_replicas);

    let r_ours = real_replica_of(Peer::Redis70, &ours, &[]);
    let r_theirs = real_replica_of(Peer::Redis70, &theirs, &[]);
    wait_in_sync(&ours, &r_ours);
    wait_in_sync(&theirs, &r_theirs);
    // Each case is built from (own replica's port, the other master's replica's port): the
    // latter is a real server, just not a replica of this master.
    let with_replicas: [fn(u16, u16) -> String; 9] = [
        |_, _| "FAILOVER TO 127.0.0.1 6".into(),
        |_, _| "FAILOVER TO 127.0.0.1 70000".into(),
        |_, _| "FAILOVER TO 127.0.0.1 -1".into(),
        |_, other| format!("FAILOVER TO 127.0.0.1 {other}"),
        |own, _| format!("FAILOVER TO localhost {own}"),
        |_, _| "FAILOVER ABORT".into(),
        |_, _| "FAILOVER TIMEOUT 0".into(),
        |_, _| "FAILOVER FORCE TIMEOUT 100".into(),
        |own, _| format!("FAILOVER TO 127.0.0.1 {own} FORCE"),
    ];
    for case in with_replicas {
        let mine = case(r_ours.port, r_theirs.port);
        let real = case(r_theirs.port, r_ours.port);
        let a = ours.conn().cmd(&words(&mine));
        let b = theirs.conn().cmd(&words(&real));
        assert!(matches!(b, Frame::Error(_)), "{real}: {b:?}");
        assert_eq!(text(&a), text(&b), "{mine} / {real}");
    }
    // On a replica.
    let replica = example_replica_of(&theirs, &[]);
    wait_in_sync(&theirs, &replica);
    for case in [
        "FAILOVER",
        "FAILOVER ABORT",
        "FAILOVER TIMEOUT 0",
        "FAILOVER TO 127.0.0.1 6",
    ] {
        let got = replica.conn().cmd(&words(case));
        let want = r_theirs.conn().cmd(&words(case));
        assert_eq!(text(&got), text(&want), "{case} on a replica");
    }
    // Nothing changed anywhere.
    for p in [&ours, &theirs] {
        assert_eq!(role(p), "master");
        assert_eq!(
            field(p, "replication", "master_failover_state"),
            "no-failover"
        );
    }
}

// ------------------------------------------------------------------ WAIT

/// `WAIT` counts real replicas that acknowledged the client's last write; one stopped replica
/// makes it time out with the count of the others.
fn wait_counts_real_replicas(peer: Peer) {
    let x = Proc::example(&NO_DELAY);
    let r1 = real_replica_of(peer, &x, &[]);
    let r2 = real_replica_of(peer, &x, &[]);
    wait_in_sync(&x, &r1);
    wait_in_sync(&x, &r2);
    let mut c = x.conn();
    // Nothing written on this connection yet: both count at once.
    assert_eq!(c.int(&["WAIT", "2", "0"]), 2);
    write_batch(&mut c, "w", 10);
    assert_eq!(c.int(&["WAIT", "2", "5000"]), 2);
    // More than there are: the timeout, then the count.
    let t = Instant::now();
    assert_eq!(c.int(&["WAIT", "3", "300"]), 2);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    r2.signal("-STOP");
    c.ok(&["SET", "after-stop", "1"]);
    let t = Instant::now();
    assert_eq!(c.int(&["WAIT", "2", "500"]), 1);
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(c.int(&["WAIT", "1", "5000"]), 1);
    r2.signal("-CONT");
    assert_eq!(c.int(&["WAIT", "2", "10000"]), 2);
    // WAIT on a replica is an error, in Redis 7.0's words.
    let mut on_replica = r1.conn();
    let theirs = on_replica.cmd(&["WAIT", "1", "0"]);
    if peer == Peer::Redis70 {
        let e = Proc::example(&["--replicaof", "127.0.0.1", &port_arg(&x)]);
        assert_eq!(text(&e.conn().cmd(&["WAIT", "1", "0"])), text(&theirs));
    }
    wait_in_sync(&x, &r2);
    assert_same_data(&x, &r2);
}

per_peer! { wait_counts_real_replicas:
    wait_counts_real_replicas_redis70 => Redis70,
    wait_counts_real_replicas_redis62 => Redis62,
    wait_counts_real_replicas_redis82 => Redis82,
    wait_counts_real_replicas_valkey81 => Valkey81,
}

/// A client blocked in `WAIT` on a master that is told `REPLICAOF` gets Redis's `-UNBLOCKED`
/// error and its connection closes, on the example exactly as on a real Redis 7.0.
#[test]
fn replicaof_unblocks_a_blocked_wait_like_redis70() {
    let target = Proc::start(Peer::Redis70, &[]);
    let mut answers = Vec::new();
    for p in [
        Proc::example(&NO_DELAY),
        Proc::start(Peer::Redis70, &NO_DELAY),
    ] {
        let mut c = p.conn();
        c.ok(&["SET", "k", "v"]);
        // No replica: WAIT 1 0 blocks forever.
        c.send(&["WAIT", "1", "0"]);
        std::thread::sleep(Duration::from_millis(200));
        p.conn().ok(&["REPLICAOF", "127.0.0.1", &port_arg(&target)]);
        let reply = text(&c.read());
        let closed = c.try_cmd(&["PING"]).is_err();
        answers.push((reply, closed));
    }
    assert_eq!(answers[0], answers[1], "example vs Redis 7.0");
    assert_eq!(
        answers[0],
        (respsync::commands::UNBLOCKED.to_string(), true)
    );
}

// ------------------------------------------------------------------ min-replicas

const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";

/// `min-replicas-to-write 1`, `min-replicas-max-lag 2`: writes are refused until a real replica
/// is attached, again once it stops acknowledging for more than 2 s, and accepted when it is
/// back. Reads always work.
fn min_replicas_follow_a_stopped_replica(peer: Peer) {
    let x = Proc::example(&[
        "--repl-diskless-sync-delay",
        "0",
        "--min-replicas-to-write",
        "1",
        "--min-replicas-max-lag",
        "2",
    ]);
    let mut c = x.conn();
    assert_eq!(error_of(c.cmd(&["SET", "k", "0"])), NOREPLICAS);
    let r = real_replica_of(peer, &x, &[]);
    wait_for(10, "writes to be accepted with a replica", || {
        matches!(c.cmd(&["SET", "k", "1"]), Frame::SimpleString(_))
    });
    assert_eq!(x.info_i64("replication", "min_slaves_good_slaves"), 1);
    r.signal("-STOP");
    let stopped = Instant::now();
    // Writes go on until the replica's last ACK is more than 2 s old.
    let mut accepted = 1;
    wait_for(
        10,
        "writes to be refused with the replica stopped",
        || match c.cmd(&["SET", "k", &(accepted + 1).to_string()]) {
            Frame::Error(e) => {
                assert_eq!(String::from_utf8_lossy(&e), NOREPLICAS);
                true
            }
            _ => {
                accepted += 1;
                false
            }
        },
    );
    assert!(
        stopped.elapsed() >= Duration::from_secs(2),
        "refused after {:?}, before the lag passed",
        stopped.elapsed()
    );
    assert_eq!(x.info_i64("replication", "min_slaves_good_slaves"), 0);
    assert_eq!(
        c.cmd(&["GET", "k"]),
        Frame::BulkString(accepted.to_string().into())
    );
    r.signal("-CONT");
    wait_for(10, "writes to be accepted again", || {
        matches!(c.cmd(&["SET", "k", "3"]), Frame::SimpleString(_))
    });
    wait_in_sync(&x, &r);
    assert_same_data(&x, &r);
}

per_peer! { min_replicas_follow_a_stopped_replica:
    min_replicas_follow_a_stopped_replica_redis70 => Redis70,
    min_replicas_follow_a_stopped_replica_redis62 => Redis62,
    min_replicas_follow_a_stopped_replica_redis82 => Redis82,
    min_replicas_follow_a_stopped_replica_valkey81 => Valkey81,
}

// ------------------------------------------------------------------ stale data

/// `replica-serve-stale-data no` on replicas whose master died: the example answers each
/// command as a real Redis 7.0 replica in the same state does (READONLY before MASTERDOWN,
/// INFO still served).
#[test]
fn stale_replicas_answer_like_redis70() {
    let master = Proc::start(Peer::Redis70, &[]);
    write_batch(&mut master.conn(), "m", 5);
    let stale = ["--replica-serve-stale-data", "no"];
    let ours = example_replica_of(&master, &stale);
    let theirs = real_replica_of(Peer::Redis70, &master, &stale);
    wait_in_sync(&master, &ours);
    wait_in_sync(&master, &theirs);
    assert_eq!(
        ours.conn().cmd(&["GET", "m:s0"]),
        Frame::BulkString("v0".into())
    );
    drop(master);
    for p in [&ours, &theirs] {
        wait_for(10, "the link to go down", || {
            field(p, "replication", "master_link_status") == "down"
        });
    }
    let cases: [&[&str]; 6] = [
        &["GET", "m:s0"],
        &["SET", "m:s0", "x"],
        &["PING"],
        &["DBSIZE"],
        &["INCR", "m:counter"],
        &["WAIT", "0", "0"],
    ];
    for case in cases {
        let a = ours.conn().cmd(case);
        let b = theirs.conn().cmd(case);
        assert_eq!(text(&a), text(&b), "{case:?}");
    }
    assert_eq!(
        error_of(ours.conn().cmd(&["GET", "m:s0"])),
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    );
    assert_eq!(
        error_of(ours.conn().cmd(&["SET", "m:s0", "x"])),
        "READONLY You can't write against a read only replica."
    );
    assert_eq!(role(&ours), "slave");
}

// ------------------------------------------------------------------ restarts

/// Saves replica `e`, kills it, runs `while_down` on its master `m`, and restarts it from its
/// RDB with `--replicaof`: its first PSYNC must continue (`sync_partial_ok` +1 on `m`).
fn restart_example_replica(e: Proc, m: &Proc, while_down: impl FnOnce(&mut Conn)) -> Proc {
    e.conn().run("SAVE");
    let rdb = std::fs::read(e.dir.0.join("dump.rdb")).expect("the replica's dump.rdb");
    drop(e);
    while_down(&mut m.conn());
    let (ok0, full0) = (stat(m, "sync_partial_ok"), stat(m, "sync_full"));
    let mport = port_arg(m);
    let mut args = vec!["--replicaof", "127.0.0.1", &mport];
    args.extend_from_slice(&NO_DELAY);
    let e = Proc::example_loading(&args, Some(&rdb), &mut support::free_ports());
    assert_converged(m, &e);
    assert_eq!(
        stat(m, "sync_partial_ok"),
        ok0 + 1,
        "resumed with PSYNC\nreplica log:\n{}\nmaster log:\n{}",
        e.log_text(),
        m.log_text()
    );
    assert_eq!(stat(m, "sync_full"), full0, "no full sync");
    e
}

/// An example replica saves, is killed, and comes back from its RDB with `--replicaof`: its
/// first PSYNC continues (psync2's "partial resync after restart using RDB aux fields"). Twice:
/// saved at offset 0 (synced before any write), then saved with the master's stream in
/// database 2, where the master's next write goes without a SELECT.
fn example_replica_restart_continues(peer: Peer) {
    let m = Proc::start(peer, &[]);
    let e = example_replica_of(&m, &[]);
    wait_in_sync(&m, &e);
    assert_eq!(offset(&m), 0);
    let e = restart_example_replica(e, &m, |c| write_batch(c, "first", 10));
    // write_batch's last write is in database 2.
    write_batch(&mut m.conn(), "second", 10);
    wait_in_sync(&m, &e);
    let e = restart_example_replica(e, &m, |c| {
        c.run("SELECT 2");
        c.run("SADD while-down x y");
    });
    assert_eq!(
        e.conn().cmd(&["SCARD", "while-down"]),
        Frame::Integer(0),
        "written in database 2, not 0"
    );
    write_batch(&mut m.conn(), "after", 5);
    assert_converged(&m, &e);
}

per_peer! { example_replica_restart_continues:
    example_replica_restart_continues_redis70 => Redis70,
    example_replica_restart_continues_redis62 => Redis62,
    example_replica_restart_continues_redis82 => Redis82,
    example_replica_restart_continues_valkey81 => Valkey81,
}

/// An example master saves, is killed, and comes back from its RDB on the same port: its real
/// replica continues partially through the master's replid2 (psync2-master-restart).
fn example_master_restart_continues(peer: Peer) {
    let a = Proc::example(&NO_DELAY);
    let b = real_replica_of(peer, &a, &[]);
    write_batch(&mut a.conn(), "before", 20);
    assert_converged(&a, &b);
    a.conn().run("SAVE");
    let (old_id, old_off) = (replid(&a), offset(&a));
    let rdb = std::fs::read(a.dir.0.join("dump.rdb")).expect("the master's dump.rdb");
    let port = a.port;
    drop(a);
    wait_for(10, "B to notice", || {
        field(&b, "replication", "master_link_status") == "down"
    });
    let a = Proc::example_loading(&NO_DELAY, Some(&rdb), &mut std::iter::once(port));
    assert_eq!(field(&a, "replication", "master_replid2"), old_id);
    assert_eq!(a.info_i64("replication", "second_repl_offset"), old_off + 1);
    assert_eq!(offset(&a), old_off);
    assert_converged(&a, &b);
    assert_eq!(stat(&a, "sync_partial_ok"), 1, "B continued partially");
    assert_eq!(stat(&a, "sync_full"), 0);
    wait_for(10, "B's log to report a partial resync", || {
        b.log_text().matches(PARTIAL_LOG).count() >= 1
    });
    write_batch(&mut a.conn(), "after", 5);
    assert_converged(&a, &b);
}

per_peer! { example_master_restart_continues:
    example_master_restart_continues_redis70 => Redis70,
    example_master_restart_continues_redis62 => Redis62,
    example_master_restart_continues_redis82 => Redis82,
    example_master_restart_continues_valkey81 => Valkey81,
}
