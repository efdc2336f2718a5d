//! The version bridge (issue 12 §5): a Redis 7.0 or Valkey 8.1 replica cannot load a Redis 8.2
//! master's RDB 12, so it cannot follow an 8.2 master directly (it loops on full syncs). The
//! example server in the middle, replicating from the 8.2 master, serves each sub-replica a
//! snapshot in a version it loads — `--repl-rdb-version` for replicas that announce nothing
//! (Redis), capped by `REPLCONF version` for those that do (Valkey) — and passes the stream on
//! byte for byte under the top master's replication id.
//!
//! What an older sub-replica can apply is what its own version knows: commands added later
//! (e.g. Redis 7.4's hash-field TTL commands) reach it unchanged, and it reports them as
//! errors from its master, exactly as it would directly behind a newer master.

mod support;

use support::{assert_same_data, wait_for, wait_in_sync, Peer, Proc};

const NO_DELAY: [&str; 2] = ["--repl-diskless-sync-delay", "0"];

fn write_some(p: &Proc, tag: &str) {
    let mut c = p.conn();
    for i in 0..50 {
        c.cmd(&["SET", &format!("{tag}:{i}"), &format!("v{i}")]);
        c.cmd(&["RPUSH", &format!("{tag}:list"), &i.to_string()]);
        c.cmd(&["HSET", &format!("{tag}:h"), &format!("f{i}"), "x"]);
    }
    c.cmd(&["SELECT", "4"]);
    c.cmd(&["SADD", &format!("{tag}:set"), "a", "b", "c"]);
    c.cmd(&["ZADD", &format!("{tag}:z"), "1", "one", "2.5", "two"]);
}

fn replicaof(p: &Proc, master: &Proc) {
    p.conn()
        .cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
}

fn master_replid(p: &Proc) -> String {
    p.info("replication", "master_replid").unwrap_or_default()
}

/// 8.2 master → example → {7.0, Valkey 8.1, 8.2} sub-replicas, with `rdb_version` for replicas
/// that announce nothing.
fn bridge(rdb_version: &str, subs: &[Peer]) {
    let top = Proc::start(Peer::Redis82, &NO_DELAY);
    write_some(&top, "before");
    let mid = Proc::example(&[
        "--repl-diskless-sync-delay",
        "0",
        "--repl-rdb-version",
        rdb_version,
    ]);
    replicaof(&mid, &top);
    wait_in_sync(&top, &mid);
    let subs: Vec<Proc> = subs.iter().map(|p| Proc::start(*p, &NO_DELAY)).collect();
    for s in &subs {
        replicaof(s, &mid);
    }
    write_some(&top, "during");
    for s in &subs {
        wait_in_sync(&mid, s);
        assert_same_data(&top, s);
        assert_eq!(
            master_replid(s),
            master_replid(&top),
            "one replid end to end"
        );
    }
    write_some(&top, "after");
    let off = wait_in_sync(&top, &mid);
    for s in &subs {
        assert_eq!(wait_in_sync(&mid, s), off, "equal offsets along the chain");
        assert_same_data(&top, s);
    }
}

#[test]
fn redis70_and_valkey81_follow_an_82_master_through_the_example() {
    // The default (9) is loaded by every replica.
    bridge("9", &[Peer::Redis70, Peer::Valkey81]);
}

#[test]
fn each_sub_replica_gets_a_version_it_loads() {
    // 12 for replicas that announce nothing (an 8.2 sub-replica loads it), while the Valkey
    // sub-replica announces 8.1 and so gets 11: two snapshots, each loaded.
    bridge("12", &[Peer::Redis82, Peer::Valkey81]);
}

#[test]
fn without_the_bridge_an_older_replica_cannot_follow() {
    // The evidence for the bridge: a 7.0 replica of the 8.2 master directly never syncs.
    let top = Proc::start(Peer::Redis82, &NO_DELAY);
    write_some(&top, "k");
    let old = Proc::start(Peer::Redis70, &[]);
    replicaof(&old, &top);
    wait_for(30, "the 7.0 replica's refusal of RDB 12", || {
        old.log_text()
            .contains("Can't handle RDB format version 12")
    });
    assert_eq!(
        old.info("replication", "master_link_status").as_deref(),
        Some("down")
    );
}
