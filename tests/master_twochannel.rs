//! The master side of the two-connection full syncs, driven by the exact bytes real replicas
//! send: Redis 8.2's rdb channel (rdb-channel.md §2, §4, §5, §8) and Valkey 8.1's dual channel
//! (protocol.md §11), with their refusals and the fallbacks to the one-connection protocol.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use respsync::master::ReplicaState;
use respsync::node::{
    Caller, CloseReason, Handled, LinkId, Node, NodeConfig, NodeEvent, SnapshotId, SnapshotTarget,
    Transmit, RDB_CLIENT_GRACE,
};
use respsync::resp::Decoder;

const SECOND: Duration = Duration::from_secs(1);
const RDB: &[u8] = b"REDIS0009\xff\0\0\0\0\0\0\0\0";

/// Redis 8.2's main-connection capa REPLCONF (rdb-channel.md §2 step 1).
const CAPA_RDB_CHANNEL: &[u8] = b"*7\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n$4\r\ncapa\r\n$16\r\nrdb-channel-repl\r\n";
/// The classic capa REPLCONF (Redis 6.2/7.0, or 8.2 with `repl-rdb-channel no`).
const CAPA_CLASSIC: &[u8] =
    b"*5\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n";
const LISTENING_PORT: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$5\r\n17002\r\n";
const PSYNC_ANY: &[u8] = b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n";
/// Valkey 8.1.8's main-connection handshake with dual channel on (rdb-channel.md §4 (b)).
const CAPA_DUAL: &[u8] = b"*7\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n$4\r\ncapa\r\n$12\r\ndual-channel\r\n";
const VERSION: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$7\r\nversion\r\n$5\r\n8.1.8\r\n";
/// Valkey's rdb-connection REPLCONF (protocol.md §11 step 3) and its inline SYNC.
const VALKEY_B_REPLCONF: &[u8] = b"*9\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$8\r\nrdb-only\r\n$1\r\n1\r\n$11\r\nrdb-channel\r\n$1\r\n1\r\n$14\r\nlistening-port\r\n$5\r\n17002\r\n";

/// Redis 8.2's rdb-connection REPLCONF naming main connection `id` (rdb-channel.md §2 step 2).
fn redis_b_replconf(id: &str) -> Vec<u8> {
    format!(
        "*11\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$8\r\nrdb-only\r\n$1\r\n1\r\n$11\r\nrdb-channel\r\n$1\r\n1\r\n$17\r\nmain-ch-client-id\r\n${}\r\n{id}\r\n$14\r\nlistening-port\r\n$5\r\n17002\r\n",
        id.len()
    )
    .into_bytes()
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Feeds client bytes to the node as the application's dispatcher would: every request is
/// decoded and handed to `handle_command`; the concatenated replies and the last outcome.
fn send(node: &mut Node, now: Instant, link: u64, wire: &[u8]) -> (String, Handled) {
    let mut buf = BytesMut::from(wire);
    let mut dec = Decoder::default();
    let mut replies = String::new();
    let mut last = Handled::NotMine;
    while let Some(cmd) = dec.decode_request(&mut buf).unwrap() {
        let h = node.handle_command(now, LinkId(link), &Caller::default(), &cmd.argv);
        if let Handled::Reply(b) = &h {
            replies.push_str(&String::from_utf8_lossy(b));
        }
        last = h;
    }
    assert!(buf.is_empty());
    (replies, last)
}

fn drain(node: &mut Node, link: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit(LinkId(link)) {
        match t {
            Transmit::Bytes(b) => out.extend_from_slice(&b),
            Transmit::File { .. } => panic!("unexpected file on link {link}"),
        }
    }
    out
}

fn events(node: &mut Node) -> Vec<NodeEvent> {
    std::iter::from_fn(|| node.poll_event()).collect()
}

fn requested(node: &mut Node) -> (SnapshotId, SnapshotTarget) {
    let evs = events(node);
    match evs.as_slice() {
        [NodeEvent::SnapshotRequested {
            snapshot, target, ..
        }] => (*snapshot, *target),
        other => panic!("expected one snapshot request, got {other:?}"),
    }
}

/// Whether the pending events close `link` for `reason`.
fn closes(node: &mut Node, link: u64, reason: CloseReason) -> bool {
    events(node).contains(&NodeEvent::Close {
        link: LinkId(link),
        reason,
    })
}

fn info(node: &Node, now: Instant) -> String {
    let mut t = String::new();
    node.write_info_replication_tail(now, &mut t);
    t
}

fn state(node: &Node, link: u64) -> ReplicaState {
    node.replica(LinkId(link)).unwrap().state()
}

fn config(delay: u64) -> NodeConfig {
    NodeConfig {
        diskless_sync_delay: Duration::from_secs(delay),
        // No PINGs in the exact streams below.
        ping_period: Duration::from_secs(3600),
        id_seed: 11,
        ..NodeConfig::default()
    }
}

const SET_PREFORK: &[&str] = &["SET", "prefork", "written-before-fork"];

/// The writes of capture capA after the fork, and the bytes they make on A.
fn writes_during(node: &mut Node) -> Vec<u8> {
    node.propagate(0, &["SET", "during1", "v1"]);
    node.propagate(3, &["SET", "db3key", "x"]);
    node.propagate(0, &["INCRBY", "counter", "1"]);
    b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$7\r\nduring1\r\n$2\r\nv1\r\n\
*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*3\r\n$3\r\nSET\r\n$6\r\ndb3key\r\n$1\r\nx\r\n\
*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$6\r\nINCRBY\r\n$7\r\ncounter\r\n$1\r\n1\r\n"
        .to_vec()
}

/// Redis 8.2 main connection `a` through `+RDBCHANNELSYNC`, then rdb connection `b` through
/// `PSYNC ? -1`.
fn redis_pair(node: &mut Node, now: Instant, a: u64, b: u64) {
    let (r, h) = send(node, now, a, &[LISTENING_PORT, CAPA_RDB_CHANNEL].concat());
    assert_eq!(
        (r.as_str(), h),
        (
            "+OK\r\n+OK\r\n",
            Handled::Reply(Bytes::from_static(b"+OK\r\n"))
        )
    );
    let psync = resp(&["PSYNC", "9916407f9831c7295ad116889ebafde1c6188102", "1"]);
    assert_eq!(send(node, now, a, &psync).1, Handled::ReplicaLink);
    assert_eq!(
        drain(node, a),
        format!("+RDBCHANNELSYNC {a}\r\n").as_bytes()
    );
    assert_eq!(state(node, a), ReplicaState::WaitRdbChannel);
    let (r, _) = send(node, now, b, &redis_b_replconf(&a.to_string()));
    assert_eq!(r, "+OK\r\n");
    assert_eq!(send(node, now, b, PSYNC_ANY).1, Handled::ReplicaLink);
}

/// A node (no diskless delay) with a Redis 8.2 pair: main connection 5, rdb connection 6.
fn redis_node(now: Instant) -> Node {
    let mut node = Node::new(config(0), now);
    redis_pair(&mut node, now, 5, 6);
    node
}

// ------------------------------------------------------------------ Redis 8 rdb channel

#[test]
fn rdb_channel_capture_a_byte_for_byte() {
    let t0 = Instant::now();
    let mut node = Node::new(config(5), t0);
    redis_pair(&mut node, t0, 5, 6);
    // The failed PSYNC with a foreign id is counted; the full sync is counted once, on B.
    assert_eq!(node.stats().sync_partial_err, 1);
    assert_eq!(node.stats().sync_full, 1);
    // Written before the fork: inside the snapshot (capA: offset 75).
    node.propagate(0, SET_PREFORK);
    assert_eq!(node.offset().value(), 75);
    let text = info(&node, t0);
    assert!(text.starts_with(
        "connected_slaves:1\r\nslave0:ip=,port=17002,state=wait_bgsave,offset=0,lag=0\r\nmaster_failover_state"
    ), "{text}");

    // The diskless delay: `\n` once a second on B, nothing at all on A.
    let mut b_wire = Vec::new();
    let mut now = t0;
    let snapshot = loop {
        now += SECOND;
        node.handle_timeout(now);
        assert_eq!(drain(&mut node, 5), b"");
        b_wire.extend(drain(&mut node, 6));
        let evs = events(&mut node);
        if let [NodeEvent::SnapshotRequested {
            snapshot, target, ..
        }] = evs.as_slice()
        {
            assert_eq!(*target, SnapshotTarget::Socket);
            break *snapshot;
        }
        assert!(evs.is_empty(), "{evs:?}");
    };
    assert_eq!(b_wire, b"\n\n\n\n\n");
    let start = node.handle_snapshot_started(now, snapshot).unwrap();
    assert_eq!(start.offset.value(), 75);
    let b_head = text_of(&drain(&mut node, 6));
    let mark = b_head
        .strip_prefix(&format!("+FULLRESYNC {} 75\r\n$EOF:", start.replid))
        .and_then(|m| m.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("B header: {b_head:?}"))
        .to_owned();
    assert_eq!(mark.len(), 40);
    // A: nothing but the stream from 76, starting with SELECT, while the snapshot goes to B.
    assert_eq!(state(&node, 5), ReplicaState::SendBulkAndStream);
    let during = writes_during(&mut node);
    assert_eq!(drain(&mut node, 5), during);
    assert_eq!(
        node.replica(LinkId(5)).unwrap().stream_position().value(),
        76 + during.len() as i64
    );
    let text = info(&node, now);
    assert!(text.starts_with(
        "connected_slaves:1\r\nslave0:ip=,port=17002,state=send_bulk_and_stream,offset=0,lag=0\r\nmaster_failover_state"
    ), "{text}");
    // No ACK during the transfer, and no timeout either.
    node.handle_timeout(now + Duration::from_secs(120));
    assert!(events(&mut node).is_empty());
    assert!(node.role_reply(now).ends_with(b"*0\r\n"));

    node.handle_snapshot_chunk(now, snapshot, Bytes::from_static(RDB))
        .unwrap();
    node.handle_snapshot_end(now, snapshot).unwrap();
    assert_eq!(drain(&mut node, 6), [RDB, mark.as_bytes()].concat());
    assert_eq!(
        events(&mut node),
        vec![NodeEvent::Close {
            link: LinkId(6),
            reason: CloseReason::RdbTransmitted
        }]
    );
    assert_eq!(state(&node, 5), ReplicaState::Online);
    node.handle_disconnect(now, LinkId(6));
    // The replica's keepalive while loading, then its first ACK (the FULLRESYNC offset).
    node.handle_input(now, LinkId(5), b"\n");
    node.handle_input(now, LinkId(5), &resp(&["REPLCONF", "ACK", "75"]));
    node.propagate(0, &["SET", "after1", "v2"]);
    assert_eq!(
        drain(&mut node, 5),
        b"*3\r\n$3\r\nSET\r\n$6\r\nafter1\r\n$2\r\nv2\r\n"
    );
    let text = info(&node, now);
    assert!(
        text.starts_with(
            "connected_slaves:1\r\nslave0:ip=,port=17002,state=online,offset=75,lag=0\r\n"
        ),
        "{text}"
    );
    assert!(events(&mut node).is_empty());
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn rdb_channel_first_ack_puts_the_main_connection_online() {
    let now = Instant::now();
    let mut node = redis_node(now);
    let (snap, _) = requested(&mut node);
    node.handle_snapshot_started(now, snap).unwrap();
    assert_eq!(state(&node, 5), ReplicaState::SendBulkAndStream);
    node.handle_input(now, LinkId(5), &resp(&["REPLCONF", "ACK", "0"]));
    assert_eq!(state(&node, 5), ReplicaState::Online);
}

#[test]
fn rdb_connection_errors() {
    let now = Instant::now();
    let mut node = Node::new(config(5), now);
    // An ordinary client (7) and a classic replica link (8) are not waiting main connections.
    assert_eq!(send(&mut node, now, 7, LISTENING_PORT).0, "+OK\r\n");
    send(&mut node, now, 8, &[CAPA_CLASSIC, PSYNC_ANY].concat());
    let table: [(Vec<u8>, &str); 6] = [
        (
            redis_b_replconf("99"),
            "-ERR Unrecognized RDB client id: 99\r\n",
        ),
        (
            redis_b_replconf("7"),
            "-ERR Unrecognized RDB client id: 7\r\n",
        ),
        (
            redis_b_replconf("8"),
            "-ERR Unrecognized RDB client id: 8\r\n",
        ),
        (
            redis_b_replconf("-3"),
            "-ERR Unrecognized RDB client id: -3\r\n",
        ),
        (
            redis_b_replconf("x"),
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            resp(&["REPLCONF", "rdb-channel", "2"]),
            "-ERR value is out of range, value must between 0 and 1\r\n",
        ),
    ];
    for (wire, want) in table {
        assert_eq!(send(&mut node, now, 9, &wire).0, want, "{}", text_of(&wire));
    }
    // Its own id does not count either, even while it waits.
    redis_pair(&mut node, now, 5, 6);
    assert_eq!(
        send(&mut node, now, 5, &redis_b_replconf("5")).0,
        "-ERR Unrecognized RDB client id: 5\r\n"
    );
}

#[test]
fn rdb_channel_is_never_offered_to_a_replica_that_did_not_ask() {
    let now = Instant::now();
    // Redis 6.2 / 7.0 / 8.2 with `repl-rdb-channel no`, and Valkey without dual channel.
    for capa in [
        CAPA_CLASSIC,
        b"*3\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n".as_slice(),
    ] {
        let mut node = Node::new(config(0), now);
        send(&mut node, now, 1, &[LISTENING_PORT, capa].concat());
        let psync = resp(&["PSYNC", "9916407f9831c7295ad116889ebafde1c6188102", "1"]);
        assert_eq!(send(&mut node, now, 1, &psync).1, Handled::ReplicaLink);
        assert_eq!(drain(&mut node, 1), b"");
        assert_eq!(state(&node, 1), ReplicaState::WaitBgsaveStart);
        let (snap, target) = requested(&mut node);
        assert_eq!(target, SnapshotTarget::Socket);
        let start = node.handle_snapshot_started(now, snap).unwrap();
        let head = text_of(&drain(&mut node, 1));
        assert!(
            head.starts_with(&format!("+FULLRESYNC {} 0\r\n$EOF:", start.replid)),
            "{head}"
        );
    }
    // The capability offered, but the node does not honour it: `repl-rdb-channel no`, or
    // disk sync (then the classic `$<len>` transfer).
    for cfg in [
        NodeConfig {
            rdb_channel: false,
            ..config(0)
        },
        NodeConfig {
            diskless_sync: false,
            ..config(0)
        },
    ] {
        let disk = !cfg.diskless_sync;
        let mut node = Node::new(cfg, now);
        assert_eq!(send(&mut node, now, 1, CAPA_RDB_CHANNEL).0, "+OK\r\n");
        assert!(
            !node
                .replica(LinkId(1))
                .unwrap()
                .capabilities()
                .rdb_channel_repl
        );
        assert_eq!(send(&mut node, now, 1, PSYNC_ANY).1, Handled::ReplicaLink);
        assert_eq!(drain(&mut node, 1), b"");
        let (_, target) = requested(&mut node);
        assert_eq!(target == SnapshotTarget::Disk, disk);
    }
    // A partial resync is never turned into a two-connection sync.
    let mut node = redis_node(now);
    let (snap, _) = requested(&mut node);
    let start = node.handle_snapshot_started(now, snap).unwrap();
    node.handle_snapshot_end(now, snap).unwrap();
    node.handle_disconnect(now, LinkId(5));
    node.handle_disconnect(now, LinkId(6));
    send(
        &mut node,
        now,
        7,
        &[LISTENING_PORT, CAPA_RDB_CHANNEL].concat(),
    );
    let psync = resp(&["PSYNC", start.replid.as_str(), "1"]);
    assert_eq!(send(&mut node, now, 7, &psync).1, Handled::ReplicaLink);
    assert_eq!(
        drain(&mut node, 7),
        format!("+CONTINUE {}\r\n", start.replid).as_bytes()
    );
}

#[test]
fn rdb_connection_lost_mid_transfer_drops_its_main_connection() {
    let now = Instant::now();
    let mut node = redis_node(now);
    let (snap, _) = requested(&mut node);
    node.handle_snapshot_started(now, snap).unwrap();
    drain(&mut node, 6);
    node.handle_disconnect(now, LinkId(6));
    assert_eq!(
        events(&mut node),
        vec![
            NodeEvent::Close {
                link: LinkId(5),
                reason: CloseReason::RdbChannelClosed
            },
            NodeEvent::SnapshotAbandoned { snapshot: snap }
        ]
    );
    assert!(node.replica(LinkId(5)).is_none());
    assert_eq!(node.backlog().unwrap().retain_from(), None);
    // Before the fork too: a waiting main connection whose rdb connection went is useless.
    redis_pair(&mut node, now, 7, 8);
    node.handle_disconnect(now, LinkId(8));
    assert!(closes(&mut node, 7, CloseReason::RdbChannelClosed));
}

#[test]
fn main_connection_lost_the_rdb_connection_still_gets_its_snapshot() {
    let now = Instant::now();
    let mut node = redis_node(now);
    node.handle_disconnect(now, LinkId(5));
    // Listed by itself once its main connection is gone (rdb-channel.md §5).
    assert!(info(&node, now)
        .starts_with("connected_slaves:1\r\nslave0:ip=,port=17002,state=wait_bgsave"));
    let (snap, _) = requested(&mut node);
    let start = node.handle_snapshot_started(now, snap).unwrap();
    node.handle_snapshot_chunk(now, snap, Bytes::from_static(RDB))
        .unwrap();
    node.handle_snapshot_end(now, snap).unwrap();
    let wire = text_of(&drain(&mut node, 6));
    assert!(wire.starts_with(&format!("+FULLRESYNC {} 0\r\n$EOF:", start.replid)));
    assert!(closes(&mut node, 6, CloseReason::RdbTransmitted));
}

#[test]
fn rdb_connections_never_take_a_disk_snapshot() {
    let now = Instant::now();
    let mut node = redis_node(now);
    // A replica without `capa eof` arrives too: it gets the disk snapshot after B's.
    send(&mut node, now, 9, PSYNC_ANY);
    let (s1, t1) = requested(&mut node);
    assert_eq!(t1, SnapshotTarget::Socket);
    node.handle_snapshot_started(now, s1).unwrap();
    assert_eq!(state(&node, 9), ReplicaState::WaitBgsaveStart);
    node.handle_snapshot_end(now, s1).unwrap();
    let evs = events(&mut node);
    assert!(
        evs.iter().any(|e| matches!(
            e,
            NodeEvent::SnapshotRequested {
                target: SnapshotTarget::Disk,
                ..
            }
        )),
        "{evs:?}"
    );
}

// ------------------------------------------------------------------ Valkey dual channel

/// Valkey main connection `a` through `+DUALCHANNELSYNC`, rdb connection `b` through `SYNC`.
fn valkey_pair(node: &mut Node, now: Instant, a: u64, b: u64) {
    let (r, _) = send(node, now, a, &[LISTENING_PORT, CAPA_DUAL, VERSION].concat());
    assert_eq!(r, "+OK\r\n+OK\r\n+OK\r\n");
    assert_eq!(node.replica(LinkId(a)).unwrap().version(), Some("8.1.8"));
    let (r, h) = send(node, now, a, PSYNC_ANY);
    assert_eq!(r, "+DUALCHANNELSYNC\r\n");
    assert!(matches!(h, Handled::Reply(_)));
    assert_eq!(state(node, a), ReplicaState::Handshake);
    assert_eq!(send(node, now, b, VALKEY_B_REPLCONF).0, "+OK\r\n");
    assert_eq!(send(node, now, b, b"SYNC\r\n").1, Handled::ReplicaLink);
    assert!(node.replica(LinkId(b)).unwrap().is_rdb_channel());
}

#[test]
fn dual_channel_endoff_then_continue_from_the_pinned_offset() {
    let now = Instant::now();
    // A backlog far smaller than what is written during the transfer: the pin keeps it.
    let mut node = Node::new(
        NodeConfig {
            backlog_size: 16 * 1024,
            ..config(0)
        },
        now,
    );
    valkey_pair(&mut node, now, 5, 6);
    assert_eq!(node.stats().sync_full, 1);
    node.propagate(0, SET_PREFORK);
    let (snap, target) = requested(&mut node);
    assert_eq!(target, SnapshotTarget::Socket);
    let start = node.handle_snapshot_started(now, snap).unwrap();
    let head = text_of(&drain(&mut node, 6));
    let mark = head
        .strip_prefix(&format!("$ENDOFF:75 {} 0 6\r\n$EOF:", start.replid))
        .and_then(|m| m.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("B header: {head:?}"));
    assert_eq!(mark.len(), 40);
    let during = writes_during(&mut node);
    let big = "x".repeat(1000);
    for i in 0..100 {
        node.propagate(0, &["SET", &format!("k{i}"), &big]);
    }
    let end = node.offset().value();
    node.handle_snapshot_chunk(now, snap, Bytes::from_static(RDB))
        .unwrap();
    node.handle_snapshot_end(now, snap).unwrap();
    drain(&mut node, 6);
    node.handle_disconnect(now, LinkId(6));
    assert!(node.backlog().unwrap().histlen() > 16 * 1024);

    assert_eq!(
        send(
            &mut node,
            now,
            5,
            &resp(&["REPLCONF", "set-rdb-client-id", "6"])
        )
        .0,
        "+OK\r\n"
    );
    let psync = resp(&["PSYNC", start.replid.as_str(), "76"]);
    assert_eq!(send(&mut node, now, 5, &psync).1, Handled::ReplicaLink);
    let wire = drain(&mut node, 5);
    let head = format!("+CONTINUE {}\r\n", start.replid);
    assert!(wire.starts_with(head.as_bytes()));
    assert!(wire[head.len()..].starts_with(&during));
    assert_eq!((wire.len() - head.len()) as i64, end - 75);
    assert_eq!(state(&node, 5), ReplicaState::BgRdbLoad);
    assert!(info(&node, now).contains("state=bg_transfer"));
    assert_eq!(node.stats().sync_partial_ok, 1);
    // The pin is released: only the main connection holds the backlog now (the retained
    // position is recomputed when the next write is flushed).
    node.propagate(0, &["SET", "a", "b"]);
    drain(&mut node, 5);
    assert_eq!(
        node.backlog().unwrap().retain_from().map(|o| o.value()),
        Some(end + 1)
    );
    node.handle_input(
        now,
        LinkId(5),
        &resp(&["REPLCONF", "ACK", &end.to_string()]),
    );
    assert_eq!(state(&node, 5), ReplicaState::Online);
}

#[test]
fn dual_channel_pin_lasts_the_grace_period_after_the_rdb_connection_closed() {
    let t0 = Instant::now();
    let mut node = Node::new(config(0), t0);
    valkey_pair(&mut node, t0, 5, 6);
    let (snap, _) = requested(&mut node);
    node.handle_snapshot_started(t0, snap).unwrap();
    node.handle_snapshot_end(t0, snap).unwrap();
    node.handle_disconnect(t0, LinkId(6));
    node.handle_timeout(t0 + RDB_CLIENT_GRACE);
    let set_id = resp(&["REPLCONF", "set-rdb-client-id", "6"]);
    assert_eq!(send(&mut node, t0, 5, &set_id).0, "+OK\r\n");
    node.handle_timeout(t0 + RDB_CLIENT_GRACE + SECOND * 2);
    assert_eq!(
        send(&mut node, t0, 5, &set_id).0,
        "-ERR Unrecognized RDB client id 6\r\n"
    );
    assert_eq!(node.backlog().unwrap().retain_from(), None);
}

#[test]
fn dual_channel_refusals_and_fallbacks() {
    let now = Instant::now();
    let mut node = Node::new(config(0), now);
    let table: [(Vec<u8>, &str); 5] = [
        (
            resp(&["REPLCONF", "set-rdb-client-id", "42"]),
            "-ERR Unrecognized RDB client id 42\r\n",
        ),
        (
            resp(&["REPLCONF", "set-rdb-client-id", "x"]),
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            resp(&["REPLCONF", "version", "8.1"]),
            "-ERR Unrecognized version format: 8.1\r\n",
        ),
        (
            resp(&["REPLCONF", "version", "8.256.0"]),
            "-ERR Unrecognized version format: 8.256.0\r\n",
        ),
        (resp(&["REPLCONF", "version", "8..1"]), "+OK\r\n"),
    ];
    for (wire, want) in table {
        assert_eq!(send(&mut node, now, 9, &wire).0, want, "{}", text_of(&wire));
    }
    // Not honoured (`dual_channel` off, or disk sync): the classic full sync.
    for cfg in [
        NodeConfig {
            dual_channel: false,
            ..config(0)
        },
        NodeConfig {
            diskless_sync: false,
            ..config(0)
        },
    ] {
        let mut node = Node::new(cfg, now);
        send(&mut node, now, 1, &[CAPA_DUAL, VERSION].concat());
        assert!(!node.replica(LinkId(1)).unwrap().capabilities().dual_channel);
        assert_eq!(send(&mut node, now, 1, PSYNC_ANY).1, Handled::ReplicaLink);
        assert_eq!(state(&node, 1), ReplicaState::WaitBgsaveStart);
    }
    // A main connection whose pin is gone asks again and gets +DUALCHANNELSYNC again.
    let mut node = Node::new(config(0), now);
    valkey_pair(&mut node, now, 5, 6);
    let (snap, _) = requested(&mut node);
    let start = node.handle_snapshot_started(now, snap).unwrap();
    node.handle_snapshot_end(now, snap).unwrap();
    node.handle_disconnect(now, LinkId(6));
    node.handle_timeout(now + RDB_CLIENT_GRACE + SECOND * 2);
    for i in 0..3000 {
        node.propagate(0, &["SET", &format!("k{i}"), &"y".repeat(1000)]);
    }
    let psync = resp(&["PSYNC", start.replid.as_str(), "1"]);
    assert_eq!(send(&mut node, now, 5, &psync).0, "+DUALCHANNELSYNC\r\n");
}

#[test]
fn dual_channel_pin_past_the_hard_limit_drops_the_rdb_connection() {
    let now = Instant::now();
    let mut node = Node::new(
        NodeConfig {
            backlog_size: 16 * 1024,
            output_buffer_limit: respsync::node::OutputBufferLimit {
                hard: 64 * 1024,
                soft: 0,
                soft_duration: SECOND,
            },
            ..config(0)
        },
        now,
    );
    valkey_pair(&mut node, now, 5, 6);
    let (snap, _) = requested(&mut node);
    node.handle_snapshot_started(now, snap).unwrap();
    for i in 0..100 {
        node.propagate(0, &["SET", &format!("k{i}"), &"z".repeat(1000)]);
    }
    node.handle_timeout(now + SECOND);
    let evs = events(&mut node);
    assert!(
        evs.iter().any(|e| matches!(
            e,
            NodeEvent::Close {
                link: LinkId(6),
                reason: CloseReason::OutputBufferHard { .. }
            }
        )),
        "{evs:?}"
    );
    assert_eq!(
        send(
            &mut node,
            now,
            5,
            &resp(&["REPLCONF", "set-rdb-client-id", "6"])
        )
        .0,
        "-ERR Unrecognized RDB client id 6\r\n"
    );
}
