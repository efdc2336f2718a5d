//! Role changes on the sans-IO `Node`, with scripted bytes and no sockets: promotion
//! (`REPLICAOF NO ONE`), following (`REPLICAOF host port`), restarts from our own RDB, chained
//! replicas, `FAILOVER` on both sides, `WAIT` and `min-replicas-to-write`. Replies are compared
//! byte for byte with what Redis 7.0 sends (protocol.md §6–§10).

use std::time::{Duration, Instant};

use bytes::Bytes;
use respsync::commands;
use respsync::ids::{ReplId, ReplOffset};
use respsync::node::{
    Caller, CloseReason, FailoverState, Handled, LinkId, Node, NodeConfig, NodeError, NodeEvent,
    Transmit, WaitOutcome, WAIT_ON_REPLICA,
};

/// A minimal valid RDB (what the application would send as the snapshot file).
const RDB: &[u8] = b"REDIS0010\xff\0\0\0\0\0\0\0\0";
const MASTER_ID: &str = "0123456789abcdef0123456789abcdef01234567";

fn config() -> NodeConfig {
    NodeConfig {
        diskless_sync: false,
        id_seed: 7,
        ..NodeConfig::default()
    }
}

fn caller() -> Caller {
    Caller {
        peer_ip: Some("127.0.0.1".into()),
        ..Caller::default()
    }
}

fn id(s: &str) -> ReplId {
    ReplId::parse(s.as_bytes()).expect("a replid")
}

fn cmd(node: &mut Node, now: Instant, link: LinkId, words: &[&str]) -> Handled {
    node.handle_command(now, link, &caller(), words)
}

/// The reply to a command, as text.
fn reply(node: &mut Node, now: Instant, link: LinkId, words: &[&str]) -> String {
    match cmd(node, now, link, words) {
        Handled::Reply(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("{words:?}: expected a reply, got {other:?}"),
    }
}

fn events(node: &mut Node) -> Vec<NodeEvent> {
    std::iter::from_fn(|| node.poll_event()).collect()
}

/// Everything the node has for `link` now (the snapshot file is [`RDB`]).
fn drain(node: &mut Node, now: Instant, link: LinkId) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit(link) {
        match t {
            Transmit::Bytes(b) => out.extend_from_slice(&b),
            Transmit::File { len, .. } => {
                assert_eq!(len, RDB.len() as u64);
                out.extend_from_slice(RDB);
                node.handle_file_sent(now, link);
            }
        }
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `REPLCONF listening-port <port>` and `capa psync2`, as a Redis 7.0 replica starts.
fn handshake(node: &mut Node, now: Instant, link: LinkId, port: u16) {
    let port = port.to_string();
    assert_eq!(
        reply(node, now, link, &["REPLCONF", "listening-port", &port]),
        "+OK\r\n"
    );
    assert_eq!(
        reply(
            node,
            now,
            link,
            &["REPLCONF", "capa", "eof", "capa", "psync2"]
        ),
        "+OK\r\n"
    );
}

/// A replica on `link` that syncs fully from a disk snapshot; returns what it received.
fn full_sync(node: &mut Node, now: Instant, link: LinkId, port: u16) -> String {
    psync(node, now, link, port, "?", -1)
}

/// `PSYNC <replid> <offset>` from a replica on `link`; returns what it received: the error,
/// or `+CONTINUE` and the backlog after it, or `+FULLRESYNC` and the snapshot (a disk
/// snapshot the application starts at once) and the stream after it.
fn psync(
    node: &mut Node,
    now: Instant,
    link: LinkId,
    port: u16,
    replid: &str,
    offset: i64,
) -> String {
    handshake(node, now, link, port);
    let off = offset.to_string();
    match cmd(node, now, link, &["PSYNC", replid, &off]) {
        Handled::ReplicaLink => {}
        Handled::Reply(b) => return text(&b),
        other => panic!("PSYNC: {other:?}"),
    }
    for ev in events(node) {
        if let NodeEvent::SnapshotRequested { snapshot, .. } = ev {
            node.handle_snapshot_started(now, snapshot)
                .expect("started");
            node.handle_snapshot_file(now, snapshot, RDB.len() as u64)
                .expect("file");
        }
    }
    text(&drain(node, now, link))
}

fn ack(node: &mut Node, now: Instant, link: LinkId, offset: i64) {
    let off = offset.to_string();
    let wire = format!(
        "*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n${}\r\n{off}\r\n",
        off.len()
    );
    node.handle_input(now, link, wire.as_bytes());
}

fn info(node: &Node, now: Instant) -> String {
    let mut s = String::new();
    node.write_info_replication_tail(now, &mut s);
    s
}

fn info_field(node: &Node, now: Instant, name: &str) -> String {
    let text = info(node, now);
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

fn set(key: &str, value: &str) -> Vec<Bytes> {
    ["SET", key, value]
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

fn wire(words: &[&str]) -> String {
    let mut s = format!("*{}\r\n", words.len());
    for w in words {
        s.push_str(&format!("${}\r\n{w}\r\n", w.len()));
    }
    s
}

/// The event that closes sub-replica `link` because the history changed.
fn history_changed(link: LinkId) -> Vec<NodeEvent> {
    vec![NodeEvent::Close {
        link,
        reason: CloseReason::HistoryChanged,
    }]
}

const PING: &str = "*1\r\n$4\r\nPING\r\n";

/// A node that follows `MASTER_ID` from offset 100 in database 3, with its link up.
fn replica_node(now: Instant) -> Node {
    let mut node = Node::new(config(), now);
    node.follow();
    node.handle_upstream_full_sync(id(MASTER_ID), ReplOffset::new(100), 3);
    node.set_upstream(true, true);
    node
}

// ------------------------------------------------------------------ chains

#[test]
fn a_replica_passes_its_masters_stream_on_byte_for_byte() {
    let now = Instant::now();
    let mut node = replica_node(now);
    assert!(node.is_replica());
    let sub = LinkId(1);
    // The sub-replica syncs under the top master's id, at the middle node's offset.
    let got = full_sync(&mut node, now, sub, 7001);
    assert!(
        got.starts_with(&format!("+FULLRESYNC {MASTER_ID} 100\r\n$")),
        "{got:?}"
    );
    // Upstream bytes go on as they are: no SELECT of our own, no PING of our own.
    let stream = format!("{PING}{}", wire(&["SET", "k", "v"]));
    node.handle_upstream_stream(Bytes::from(stream.clone()));
    assert_eq!(text(&drain(&mut node, now, sub)), stream);
    assert_eq!(node.offset().value(), 100 + stream.len() as i64);
    node.handle_timeout(now + Duration::from_secs(30));
    assert_eq!(
        text(&drain(&mut node, now, sub)),
        "",
        "a replica never PINGs"
    );
    // Its own link goes down: new sub-replicas are refused, the connected one stays.
    node.set_upstream(true, false);
    assert_eq!(
        reply(&mut node, now, LinkId(2), &["PSYNC", MASTER_ID, "101"]),
        "-NOMASTERLINK Can't SYNC while not connected with my master\r\n"
    );
    assert_eq!(
        reply(&mut node, now, LinkId(2), &["SYNC"]),
        "-NOMASTERLINK Can't SYNC while not connected with my master\r\n"
    );
    assert!(node.replica(sub).is_some());
    // Back up, continuing with the same master: still nobody is dropped.
    node.set_upstream(true, true);
    node.handle_upstream_continue(id(MASTER_ID));
    assert!(events(&mut node)
        .iter()
        .all(|e| !matches!(e, NodeEvent::Close { .. })));
    let end = node.offset().value();
    let got = psync(&mut node, now, LinkId(2), 7002, MASTER_ID, end + 1);
    assert_eq!(got, format!("+CONTINUE {MASTER_ID}\r\n"));
}

#[test]
fn a_new_history_upstream_drops_sub_replicas() {
    let now = Instant::now();
    let mut node = replica_node(now);
    let sub = LinkId(1);
    full_sync(&mut node, now, sub, 7001);
    events(&mut node);
    // +CONTINUE with another id: shift, valid up to our offset; sub-replicas come back.
    let new_master = id("fedcba9876543210fedcba9876543210fedcba98");
    node.handle_upstream_continue(new_master);
    assert_eq!(node.ids().id, new_master);
    assert_eq!(node.ids().id2, id(MASTER_ID));
    assert_eq!(node.ids().second_offset.value(), 101);
    assert_eq!(events(&mut node), history_changed(sub));
    node.handle_disconnect(now, sub);
    let got = psync(&mut node, now, sub, 7001, MASTER_ID, 101);
    assert_eq!(got, format!("+CONTINUE {new_master}\r\n"));
    // A full sync from a new master: every sub-replica is dropped again.
    node.handle_upstream_full_sync(new_master, ReplOffset::new(5000), 0);
    assert_eq!(events(&mut node), history_changed(sub));
    assert_eq!(node.offset().value(), 5000);
}

// ------------------------------------------------------------------ promotion

#[test]
fn promotion_shifts_ids_keeps_the_backlog_and_selects_before_the_next_write() {
    let now = Instant::now();
    let mut node = replica_node(now);
    let sub = LinkId(1);
    full_sync(&mut node, now, sub, 7001);
    node.handle_upstream_stream(Bytes::from_static(PING.as_bytes()));
    drain(&mut node, now, sub);
    let end = node.offset().value();
    assert_eq!(end, 114);

    node.promote(now);
    assert!(!node.is_replica());
    let ids = *node.ids();
    assert_ne!(ids.id, id(MASTER_ID), "a fresh id");
    assert_eq!(ids.id2, id(MASTER_ID));
    assert_eq!(ids.second_offset.value(), end + 1);
    assert_eq!(node.offset().value(), end, "the offset is kept");
    assert_eq!(info_field(&node, now, "master_replid2"), MASTER_ID);
    assert_eq!(info_field(&node, now, "second_repl_offset"), "115");
    assert_eq!(info_field(&node, now, "master_repl_offset"), "114");
    assert_eq!(info_field(&node, now, "repl_backlog_active"), "1");
    // Sub-replicas are closed so that they learn the new id.
    assert_eq!(events(&mut node), history_changed(sub));
    node.handle_disconnect(now, sub);
    // They continue through replid2, up to the promotion point and not a byte beyond.
    let got = psync(&mut node, now, sub, 7001, MASTER_ID, 115);
    assert_eq!(got, format!("+CONTINUE {}\r\n", ids.id));
    assert_eq!(node.stats().sync_partial_ok, 1);
    let got = psync(&mut node, now, LinkId(2), 7002, MASTER_ID, 116);
    assert!(
        got.starts_with(&format!("+FULLRESYNC {} 114\r\n", ids.id)),
        "{got:?}"
    );
    assert_eq!(node.stats().sync_partial_err, 1);
    // The first write after a promotion carries SELECT, even in the database the old stream
    // was in.
    node.propagate(3, &set("k", "v"));
    assert_eq!(
        text(&drain(&mut node, now, sub)),
        format!("{}{}", wire(&["SELECT", "3"]), wire(&["SET", "k", "v"]))
    );
    // Promoting a master changes nothing.
    let before = *node.ids();
    let _ = events(&mut node);
    node.promote(now);
    assert_eq!(node.ids().id2, before.id, "a second promotion shifts again");
}

/// The whole PSYNC2 story between two nodes: A masters B, B is promoted, A follows B and its
/// first PSYNC (own id, own offset + 1) continues.
#[test]
fn a_demoted_master_continues_with_its_promoted_replica() {
    let now = Instant::now();
    let mut a = Node::new(config(), now);
    let b_link = LinkId(1);
    let got = full_sync(&mut a, now, b_link, 7001);
    let a_id = a.ids().id;
    assert!(got.starts_with(&format!("+FULLRESYNC {a_id} 0\r\n")));
    a.propagate(0, &set("k", "v"));
    let stream = drain(&mut a, now, b_link);

    let mut b = Node::new(
        NodeConfig {
            id_seed: 99,
            ..config()
        },
        now,
    );
    b.follow();
    b.handle_upstream_full_sync(a_id, ReplOffset::new(0), 0);
    b.set_upstream(true, true);
    b.handle_upstream_stream(Bytes::from(stream));
    assert_eq!(b.offset(), a.offset());

    b.promote(now);
    b.propagate(0, &set("k2", "v2"));
    a.handle_disconnect(now, b_link);
    a.follow();
    assert!(a.is_replica());
    assert_eq!(a.ids().id, a_id, "following keeps our id");
    let first = a.offset().value() + 1;
    let a_link = LinkId(9);
    let got = psync(&mut b, now, a_link, 7000, a_id.as_str(), first);
    let b_id = b.ids().id;
    assert_eq!(
        got,
        format!(
            "+CONTINUE {b_id}\r\n{}{}",
            wire(&["SELECT", "0"]),
            wire(&["SET", "k2", "v2"])
        )
    );
    assert_eq!(b.stats().sync_partial_ok, 1);
    assert_eq!(b.stats().sync_full, 0);
    assert_eq!(a.stats().sync_full, 1, "only B's first sync");
    a.handle_upstream_continue(b_id);
    assert_eq!(a.ids().id, b_id);
    assert_eq!(a.ids().id2, a_id);
}

#[test]
fn following_keeps_ids_offset_and_sub_replicas() {
    let now = Instant::now();
    let mut node = Node::new(config(), now);
    let sub = LinkId(1);
    full_sync(&mut node, now, sub, 7001);
    node.propagate(0, &set("k", "v"));
    drain(&mut node, now, sub);
    let (ids, offset) = (*node.ids(), node.offset());
    node.follow();
    assert!(node.is_replica());
    assert_eq!(*node.ids(), ids);
    assert_eq!(node.offset(), offset);
    assert!(
        events(&mut node)
            .iter()
            .all(|e| !matches!(e, NodeEvent::Close { .. })),
        "7.0 keeps sub-replicas until the history changes"
    );
    assert!(node.replica(sub).is_some());
    // A replica: no min-replicas refusal, no WAIT, no FAILOVER, no new sub-replica while the
    // link is not up.
    node.config_mut().min_replicas_to_write = 3;
    assert!(!node.writes_refused(now));
    assert_eq!(
        node.handle_wait(now, offset, 1, None, true),
        Err(NodeError::WaitOnReplica)
    );
    assert_eq!(NodeError::WaitOnReplica.to_string(), WAIT_ON_REPLICA);
    assert_eq!(
        reply(&mut node, now, LinkId(5), &["FAILOVER"]),
        "-ERR FAILOVER is not valid when server is a replica.\r\n"
    );
    assert_eq!(
        reply(&mut node, now, LinkId(5), &["PSYNC", "?", "-1"]),
        "-NOMASTERLINK Can't SYNC while not connected with my master\r\n"
    );
}

// ------------------------------------------------------------------ restarts

#[test]
fn a_restored_master_serves_its_old_history_through_replid2() {
    let now = Instant::now();
    for saved in [0, 1234] {
        let mut node = Node::restored(config(), now, id(MASTER_ID), ReplOffset::new(saved));
        assert!(!node.is_replica());
        assert_ne!(node.ids().id, id(MASTER_ID));
        assert_eq!(node.ids().id2, id(MASTER_ID));
        assert_eq!(node.ids().second_offset.value(), saved + 1);
        assert_eq!(node.offset().value(), saved);
        assert_eq!(
            info_field(&node, now, "repl_backlog_first_byte_offset"),
            (saved + 1).to_string()
        );
        assert_eq!(info_field(&node, now, "repl_backlog_histlen"), "0");
        let new_id = node.ids().id;
        let got = psync(&mut node, now, LinkId(1), 7001, MASTER_ID, saved + 1);
        assert_eq!(got, format!("+CONTINUE {new_id}\r\n"));
        // Beyond the saved history: a full sync.
        let got = psync(&mut node, now, LinkId(2), 7002, MASTER_ID, saved + 2);
        assert!(got.starts_with("+FULLRESYNC "), "{got:?}");
        // Its first write selects a database.
        node.propagate(0, &set("k", "v"));
        assert!(text(&drain(&mut node, now, LinkId(1))).starts_with(&wire(&["SELECT", "0"])));
    }
}

#[test]
fn a_restored_replica_resumes_its_masters_history() {
    let now = Instant::now();
    let mut node = Node::restored_replica(config(), now, id(MASTER_ID), ReplOffset::new(500));
    assert!(node.is_replica());
    assert_eq!(node.ids().id, id(MASTER_ID));
    assert_eq!(node.offset().value(), 500);
    assert_eq!(
        reply(&mut node, now, LinkId(1), &["PSYNC", MASTER_ID, "501"]),
        "-NOMASTERLINK Can't SYNC while not connected with my master\r\n"
    );
    // Its master accepted the PSYNC with the same id.
    node.set_upstream(true, true);
    node.handle_upstream_continue(id(MASTER_ID));
    assert_eq!(node.ids().id2, ReplId::ZERO);
    let got = psync(&mut node, now, LinkId(1), 7001, MASTER_ID, 501);
    assert_eq!(got, format!("+CONTINUE {MASTER_ID}\r\n"));
}

// ------------------------------------------------------------------ FAILOVER

/// The event that hands the master role to the replica at 127.0.0.1:7001.
fn demote_to_7001() -> Vec<NodeEvent> {
    vec![NodeEvent::FailoverDemote {
        host: "127.0.0.1".into(),
        port: 7001,
    }]
}

/// A master at a non-zero offset with one online replica (127.0.0.1:7001) that has not
/// acknowledged the last write yet.
fn master_with_replica(now: Instant) -> (Node, LinkId) {
    let mut node = Node::new(config(), now);
    let r = LinkId(1);
    full_sync(&mut node, now, r, 7001);
    node.propagate(0, &set("k", "v"));
    drain(&mut node, now, r);
    let _ = events(&mut node);
    (node, r)
}

#[test]
fn failover_refusals_use_redis_words() {
    let now = Instant::now();
    let c = LinkId(50);
    let mut alone = Node::new(config(), now);
    for (words, want) in [
        (
            &["FAILOVER"][..],
            "-ERR FAILOVER requires connected replicas.\r\n",
        ),
        (&["FAILOVER", "ABORT"], "-ERR No failover in progress.\r\n"),
        (
            &["FAILOVER", "TIMEOUT", "0"],
            "-ERR FAILOVER timeout must be greater than 0\r\n",
        ),
        (
            &["FAILOVER", "TIMEOUT", "x"],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (&["FAILOVER", "ABORT", "ABORT"], "-ERR syntax error\r\n"),
        (
            &["FAILOVER", "ABORT", "TIMEOUT", "0"],
            "-ERR syntax error\r\n",
        ),
        (&["FAILOVER", "FORCE", "FORCE"], "-ERR syntax error\r\n"),
        (&["FAILOVER", "TO", "h"], "-ERR syntax error\r\n"),
        (
            &["FAILOVER", "TO", "h", "1", "FORCE"],
            "-ERR FAILOVER requires connected replicas.\r\n",
        ),
    ] {
        assert_eq!(reply(&mut alone, now, c, words), want, "{words:?}");
    }
    let (mut node, _) = master_with_replica(now);
    for (words, want) in [
        (
            &["FAILOVER", "TO", "127.0.0.1", "7002"][..],
            "-ERR FAILOVER target HOST and PORT is not a replica.\r\n",
        ),
        (
            &["FAILOVER", "TO", "127.0.0.1", "70000"],
            "-ERR FAILOVER target HOST and PORT is not a replica.\r\n",
        ),
        (
            &["FAILOVER", "TO", "localhost", "7001"],
            "-ERR FAILOVER target HOST and PORT is not a replica.\r\n",
        ),
        (
            &["FAILOVER", "TO", "127.0.0.1", "7001", "FORCE"],
            "-ERR FAILOVER with force option requires both a timeout and target HOST and IP.\r\n",
        ),
        (
            &["FAILOVER", "FORCE", "TIMEOUT", "10"],
            "-ERR FAILOVER with force option requires both a timeout and target HOST and IP.\r\n",
        ),
        (&["FAILOVER", "ABORT"], "-ERR No failover in progress.\r\n"),
    ] {
        assert_eq!(reply(&mut node, now, c, words), want, "{words:?}");
    }
    assert_eq!(node.failover_state(), FailoverState::NoFailover);
    assert!(!node.writes_paused());
}

#[test]
fn failover_waits_for_the_target_then_demotes() {
    let now = Instant::now();
    let (mut node, r) = master_with_replica(now);
    let end = node.offset().value();
    assert_eq!(
        reply(
            &mut node,
            now,
            LinkId(50),
            &["FAILOVER", "TO", "127.0.0.1", "7001"]
        ),
        "+OK\r\n"
    );
    assert_eq!(node.failover_state(), FailoverState::WaitingForSync);
    assert_eq!(
        info_field(&node, now, "master_failover_state"),
        "waiting-for-sync"
    );
    assert!(node.writes_paused());
    assert_eq!(
        reply(&mut node, now, LinkId(50), &["FAILOVER"]),
        "-ERR FAILOVER already in progress.\r\n"
    );
    assert_eq!(
        reply(&mut node, now, LinkId(51), &["PSYNC", "?", "-1"]),
        "-NOMASTERLINK Can't SYNC while failing over\r\n"
    );
    // An ACK short of the end changes nothing; the full offset hands over.
    ack(&mut node, now, r, end - 1);
    assert!(events(&mut node).is_empty());
    ack(&mut node, now, r, end);
    assert_eq!(events(&mut node), demote_to_7001());
    assert_eq!(node.failover_state(), FailoverState::InProgress);
    assert_eq!(
        info_field(&node, now, "master_failover_state"),
        "failover-in-progress"
    );
    assert!(node.is_replica());
    let ids = *node.ids();
    node.handle_failover_result(now, true);
    assert_eq!(node.failover_state(), FailoverState::NoFailover);
    assert_eq!(
        info_field(&node, now, "master_failover_state"),
        "no-failover"
    );
    assert!(!node.writes_paused());
    assert!(node.is_replica());
    assert_eq!(
        *node.ids(),
        ids,
        "the new master's +CONTINUE shifts them later"
    );
}

#[test]
fn failover_without_target_takes_the_first_caught_up_replica() {
    let now = Instant::now();
    let (mut node, r) = master_with_replica(now);
    let end = node.offset().value();
    assert_eq!(reply(&mut node, now, LinkId(50), &["FAILOVER"]), "+OK\r\n");
    ack(&mut node, now, r, end);
    assert_eq!(events(&mut node), demote_to_7001());
}

#[test]
fn failover_aborts_and_undoes_the_demotion() {
    let now = Instant::now();
    // Refused by the target: a master again, under a new id, its old one as replid2.
    let (mut node, r) = master_with_replica(now);
    let end = node.offset().value();
    let old = node.ids().id;
    reply(
        &mut node,
        now,
        LinkId(50),
        &["FAILOVER", "TO", "127.0.0.1", "7001"],
    );
    ack(&mut node, now, r, end);
    let _ = events(&mut node);
    node.handle_failover_result(now, false);
    let evs = events(&mut node);
    assert!(
        evs.contains(&NodeEvent::FailoverAborted {
            reason: "Failover target rejected the PSYNC request"
        }),
        "{evs:?}"
    );
    assert!(!node.is_replica());
    assert_eq!(node.ids().id2, old);
    assert_eq!(node.ids().second_offset.value(), end + 1);
    assert_eq!(node.failover_state(), FailoverState::NoFailover);
    assert!(!node.writes_paused());

    // Never caught up before TIMEOUT: aborted while still waiting, nothing shifted.
    let (mut node, _) = master_with_replica(now);
    let ids = *node.ids();
    assert_eq!(
        reply(&mut node, now, LinkId(50), &["FAILOVER", "TIMEOUT", "100"]),
        "+OK\r\n"
    );
    assert_eq!(
        node.poll_timeout(),
        Some(now + Duration::from_millis(100)),
        "the deadline is the next timer"
    );
    node.handle_timeout(now + Duration::from_millis(100));
    assert_eq!(
        events(&mut node),
        vec![NodeEvent::FailoverAborted {
            reason: "Replica never caught up before timeout"
        }]
    );
    assert_eq!(*node.ids(), ids);
    assert!(!node.writes_paused());

    // FAILOVER ABORT while waiting.
    let (mut node, _) = master_with_replica(now);
    reply(&mut node, now, LinkId(50), &["FAILOVER", "TIMEOUT", "5000"]);
    assert_eq!(
        reply(&mut node, now, LinkId(50), &["FAILOVER", "ABORT"]),
        "+OK\r\n"
    );
    assert_eq!(
        events(&mut node),
        vec![NodeEvent::FailoverAborted {
            reason: "Failover manually aborted"
        }]
    );
    assert_eq!(node.failover_state(), FailoverState::NoFailover);
}

#[test]
fn failover_force_hands_over_at_the_timeout() {
    let now = Instant::now();
    let (mut node, _) = master_with_replica(now);
    assert_eq!(
        reply(
            &mut node,
            now,
            LinkId(50),
            &[
                "FAILOVER",
                "TO",
                "127.0.0.1",
                "7001",
                "FORCE",
                "TIMEOUT",
                "100"
            ]
        ),
        "+OK\r\n"
    );
    node.handle_timeout(now + Duration::from_millis(99));
    assert!(events(&mut node).is_empty());
    node.handle_timeout(now + Duration::from_millis(100));
    assert_eq!(events(&mut node), demote_to_7001());
}

#[test]
fn psync_failover_promotes_the_target() {
    let now = Instant::now();
    let mut node = replica_node(now);
    let end = node.offset().value();
    let next = (end + 1).to_string();
    let other = "fedcba9876543210fedcba9876543210fedcba98";
    assert_eq!(
        reply(
            &mut node,
            now,
            LinkId(1),
            &["PSYNC", other, &next, "FAILOVER"]
        ),
        "-ERR PSYNC FAILOVER replid must match my replid.\r\n"
    );
    assert!(node.is_replica());
    let link = LinkId(1);
    handshake(&mut node, now, link, 7000);
    assert_eq!(
        cmd(
            &mut node,
            now,
            link,
            &["PSYNC", MASTER_ID, &next, "FAILOVER"]
        ),
        Handled::ReplicaLink
    );
    assert!(events(&mut node).contains(&NodeEvent::PromotedByFailover));
    assert!(!node.is_replica());
    let new_id = node.ids().id;
    assert_eq!(node.ids().id2, id(MASTER_ID));
    assert_eq!(
        text(&drain(&mut node, now, link)),
        format!("+CONTINUE {new_id}\r\n")
    );
    assert_eq!(node.stats().sync_partial_ok, 1);
    // A master refuses PSYNC FAILOVER.
    assert_eq!(
        reply(
            &mut node,
            now,
            LinkId(2),
            &["PSYNC", MASTER_ID, &next, "FAILOVER"]
        ),
        "-ERR PSYNC FAILOVER can't be sent to a master.\r\n"
    );
}

// ------------------------------------------------------------------ WAIT

#[test]
fn wait_counts_acks_with_one_shared_getack() {
    let now = Instant::now();
    let mut node = Node::new(config(), now);
    let (r1, r2) = (LinkId(1), LinkId(2));
    full_sync(&mut node, now, r1, 7001);
    full_sync(&mut node, now, r2, 7002);
    let _ = events(&mut node);
    // Nothing written yet by this client: both count.
    assert_eq!(
        node.handle_wait(now, ReplOffset::new(0), 2, None, true),
        Ok(WaitOutcome::Ready(2))
    );
    node.propagate(0, &set("k", "v"));
    let target = node.offset();
    let timeout = Some(Duration::from_secs(1));
    let Ok(WaitOutcome::Blocked(w1)) = node.handle_wait(now, target, 2, timeout, true) else {
        panic!("WAIT 2 should block")
    };
    let Ok(WaitOutcome::Blocked(w2)) = node.handle_wait(now, target, 1, timeout, true) else {
        panic!("WAIT 1 should block")
    };
    // Inside MULTI it cannot block: the count now.
    assert_eq!(
        node.handle_wait(now, target, 2, timeout, false),
        Ok(WaitOutcome::Ready(0))
    );
    // One GETACK for every waiter, after the write.
    let getack = wire(&["REPLCONF", "GETACK", "*"]);
    let want = format!(
        "{}{}{getack}",
        wire(&["SELECT", "0"]),
        wire(&["SET", "k", "v"])
    );
    assert_eq!(text(&drain(&mut node, now, r1)), want);
    assert_eq!(text(&drain(&mut node, now, r2)), want);
    ack(&mut node, now, r1, target.value());
    assert_eq!(
        events(&mut node),
        vec![NodeEvent::WaitDone {
            wait: w2,
            replicas: 1
        }]
    );
    ack(&mut node, now, r2, target.value());
    assert_eq!(
        events(&mut node),
        vec![NodeEvent::WaitDone {
            wait: w1,
            replicas: 2
        }]
    );
    // More than there are: the timeout answers with the count.
    let Ok(WaitOutcome::Blocked(w3)) =
        node.handle_wait(now, target, 3, Some(Duration::from_millis(50)), true)
    else {
        panic!("WAIT 3 should block")
    };
    node.handle_timeout(now + Duration::from_millis(49));
    assert!(events(&mut node).is_empty());
    node.handle_timeout(now + Duration::from_millis(50));
    assert_eq!(
        events(&mut node),
        vec![NodeEvent::WaitDone {
            wait: w3,
            replicas: 2
        }]
    );
}

// ------------------------------------------------------------------ min-replicas

#[test]
fn min_replicas_refuse_writes_until_enough_fresh_acks() {
    let t0 = Instant::now();
    let mut node = Node::new(
        NodeConfig {
            min_replicas_to_write: 1,
            min_replicas_max_lag: Duration::from_secs(2),
            ..config()
        },
        t0,
    );
    assert!(node.writes_refused(t0), "no replica yet");
    assert_eq!(info_field(&node, t0, "min_slaves_good_slaves"), "0");
    let r = LinkId(1);
    full_sync(&mut node, t0, r, 7001);
    ack(&mut node, t0, r, 0);
    assert!(!node.writes_refused(t0));
    assert_eq!(info_field(&node, t0, "min_slaves_good_slaves"), "1");
    // Lag 2 s is still good; beyond it the replica no longer counts.
    assert!(!node.writes_refused(t0 + Duration::from_secs(2)));
    let late = t0 + Duration::from_secs(3);
    assert!(node.writes_refused(late));
    assert_eq!(info_field(&node, late, "min_slaves_good_slaves"), "0");
    ack(&mut node, late, r, 0);
    assert!(!node.writes_refused(late));
    // Two needed, one there.
    node.config_mut().min_replicas_to_write = 2;
    assert!(node.writes_refused(late));
    // A lag of 0 turns the check off, as in Redis.
    node.config_mut().min_replicas_max_lag = Duration::ZERO;
    assert!(!node.writes_refused(late));
    assert!(!info(&node, late).contains("min_slaves_good_slaves"));
}

// ------------------------------------------------------------------ command facts

#[test]
fn refusal_strings_and_argument_parsing_match_redis() {
    assert_eq!(
        commands::READONLY,
        "READONLY You can't write against a read only replica."
    );
    assert_eq!(
        commands::MASTERDOWN,
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."
    );
    assert_eq!(
        commands::NOREPLICAS,
        "NOREPLICAS Not enough good replicas to write."
    );
    assert_eq!(
        commands::parse_replicaof(b"NO", b"ONE"),
        Ok(commands::ReplicaOf::NoOne)
    );
    for bad in [&b"-1"[..], b"65536", b"x"] {
        assert_eq!(
            commands::parse_replicaof(b"127.0.0.1", bad),
            Err(commands::INVALID_MASTER_PORT),
            "{bad:?}"
        );
    }
    assert_eq!(
        commands::parse_wait(b"1", b"-1").map(|_| ()),
        Err(commands::NEGATIVE_TIMEOUT)
    );
    assert_eq!(
        commands::parse_wait(b"2", b"0").ok(),
        Some((2, None)),
        "0 waits forever"
    );
    assert!(commands::is_write(b"set") && commands::is_write(b"INCRBY"));
    assert!(!commands::is_write(b"get") && !commands::is_write(b"wait"));
    assert!(commands::is_stale_ok(b"INFO") && commands::is_stale_ok(b"replicaof"));
    assert!(!commands::is_stale_ok(b"get") && !commands::is_stale_ok(b"ping"));
}
