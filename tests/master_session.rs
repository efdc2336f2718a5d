//! The master side (`Node` + `MasterSession`) driven by scripted replica bytes, with the exact
//! bytes it puts on the wire checked against protocol.md (§1.4, §1.6, §2, §3, §4, §5, §9, §10
//! and the captures of its appendix).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use respsync::ids::{ReplId, ReplOffset};
use respsync::master::{RdbFilter, ReplicaState};
use respsync::node::{
    Caller, CloseReason, Handled, LinkId, Node, NodeConfig, NodeEvent, OutputBufferLimit,
    SnapshotId, SnapshotTarget, Transmit,
};
use respsync::resp::Decoder;

// ------------------------------------------------------------------ helpers

/// RESP encoding of a command, written here independently of the crate's encoder.
fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn s(args: &[&str]) -> Vec<u8> {
    let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    resp(&v)
}

const SELECT0: &[u8] = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n";
const SET_KV: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
const PING: &[u8] = b"*1\r\n$4\r\nping\r\n";
const GETACK: &[u8] = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n";
/// The smallest RDB Redis 7 accepts (protocol.md appendix A.5).
const RDB: &[u8] = b"REDIS0010\xff\0\0\0\0\0\0\0\0";
const SECOND: Duration = Duration::from_secs(1);

fn disk() -> NodeConfig {
    NodeConfig {
        diskless_sync: false,
        id_seed: 7,
        ..NodeConfig::default()
    }
}

fn diskless(delay: Duration) -> NodeConfig {
    NodeConfig {
        diskless_sync: true,
        diskless_sync_delay: delay,
        id_seed: 7,
        ..NodeConfig::default()
    }
}

fn me() -> Caller {
    Caller::default()
}

fn cmd(node: &mut Node, now: Instant, link: u64, argv: &[&str]) -> Handled {
    let v: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
    node.handle_command(now, LinkId(link), &me(), &v)
}

fn reply(node: &mut Node, now: Instant, link: u64, argv: &[&str]) -> String {
    match cmd(node, now, link, argv) {
        Handled::Reply(b) => String::from_utf8(b.to_vec()).unwrap(),
        other => panic!("{argv:?}: expected a reply, got {other:?}"),
    }
}

/// `REPLCONF listening-port <port>`, `capa eof capa psync2` (if `eof`), `PSYNC id off`.
fn psync(node: &mut Node, now: Instant, link: u64, eof: bool, id: &str, off: i64) -> Handled {
    let port = (7000 + link).to_string();
    assert_eq!(
        reply(node, now, link, &["REPLCONF", "listening-port", &port]),
        "+OK\r\n"
    );
    if eof {
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
    cmd(node, now, link, &["PSYNC", id, &off.to_string()])
}

/// Everything link `link` has to send now (a file is an error here).
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

/// Everything link `link` has to send, writing `rdb` for a file.
fn drain_file(node: &mut Node, now: Instant, link: u64, rdb: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit(LinkId(link)) {
        match t {
            Transmit::Bytes(b) => out.extend_from_slice(&b),
            Transmit::File { len, .. } => {
                assert_eq!(len, rdb.len() as u64);
                out.extend_from_slice(rdb);
                node.handle_file_sent(now, LinkId(link));
            }
        }
    }
    out
}

fn events(node: &mut Node) -> Vec<NodeEvent> {
    std::iter::from_fn(|| node.poll_event()).collect()
}

fn requested(node: &mut Node) -> (SnapshotId, SnapshotTarget, RdbFilter) {
    match events(node).as_slice() {
        [NodeEvent::SnapshotRequested {
            snapshot,
            target,
            filter,
            ..
        }] => (*snapshot, *target, *filter),
        other => panic!("expected one snapshot request, got {other:?}"),
    }
}

fn ack(node: &mut Node, now: Instant, link: u64, off: i64) {
    node.handle_input(
        now,
        LinkId(link),
        &s(&["REPLCONF", "ACK", &off.to_string()]),
    );
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A disk-mode node with replica `link` online after a full sync of [`RDB`] (stream db unset).
fn online_disk(now: Instant, links: &[u64]) -> Node {
    online_with(disk(), now, links)
}

/// Like [`online_disk`] with the given settings (which must be disk mode).
fn online_with(cfg: NodeConfig, now: Instant, links: &[u64]) -> Node {
    let mut node = Node::new(cfg, now);
    for &l in links {
        assert_eq!(
            psync(&mut node, now, l, true, "?", -1),
            Handled::ReplicaLink
        );
    }
    let (id, target, _) = requested(&mut node);
    assert_eq!(target, SnapshotTarget::Disk);
    node.handle_snapshot_started(now, id).unwrap();
    node.handle_snapshot_file(now, id, RDB.len() as u64)
        .unwrap();
    for &l in links {
        drain_file(&mut node, now, l, RDB);
        assert_eq!(
            node.replica(LinkId(l)).unwrap().state(),
            ReplicaState::Online
        );
    }
    node
}

fn info(node: &Node, now: Instant) -> String {
    let mut t = String::new();
    node.write_info_replication_tail(now, &mut t);
    t
}

// ------------------------------------------------------------------ §1.4 handshake replies

#[test]
fn replconf_replies_and_errors_are_redis_s() {
    let now = Instant::now();
    let mut node = Node::new(disk(), now);
    let r = |node: &mut Node, argv: &[&str]| reply(node, now, 1, argv);
    assert_eq!(
        r(&mut node, &["REPLCONF", "listening-port", "7002"]),
        "+OK\r\n"
    );
    assert_eq!(
        r(&mut node, &["replconf", "IP-ADDRESS", "10.9.9.9"]),
        "+OK\r\n"
    );
    assert_eq!(
        r(&mut node, &["REPLCONF", "capa", "eof", "capa", "psync2"]),
        "+OK\r\n"
    );
    // Unknown capabilities are ignored silently.
    assert_eq!(
        r(&mut node, &["REPLCONF", "capa", "dual-channel"]),
        "+OK\r\n"
    );
    assert_eq!(r(&mut node, &["REPLCONF"]), "+OK\r\n");
    let session = node.replica(LinkId(1)).unwrap();
    assert_eq!(session.listening_port(), 7002);
    assert_eq!(session.ip(), "10.9.9.9");
    assert!(session.capabilities().eof && session.capabilities().psync2);
    assert_eq!(session.state(), ReplicaState::Handshake);

    let long = "1".repeat(256);
    let table: [(&[&str], &str); 13] = [
        (&["REPLCONF", "listening-port"], "-ERR syntax error\r\n"),
        (
            &["REPLCONF", "capa", "eof", "capa"],
            "-ERR syntax error\r\n",
        ),
        (
            &["REPLCONF", "foo", "bar"],
            "-ERR Unrecognized REPLCONF option: foo\r\n",
        ),
        // Options run left to right: the first one applies, the second one fails.
        (
            &["REPLCONF", "listening-port", "7003", "nope", "x"],
            "-ERR Unrecognized REPLCONF option: nope\r\n",
        ),
        (
            &["REPLCONF", "listening-port", "abc"],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            &["REPLCONF", "ip-address", &long],
            "-ERR REPLCONF ip-address provided by replica instance is too long: 256 bytes\r\n",
        ),
        (&["REPLCONF", "ip-address", &long[..255]], "+OK\r\n"),
        (
            &["REPLCONF", "rdb-only", "2"],
            "-ERR value is out of range, value must between 0 and 1\r\n",
        ),
        (
            &["REPLCONF", "rdb-only", "-1"],
            "-ERR value is out of range, value must between 0 and 1\r\n",
        ),
        (
            &["REPLCONF", "rdb-only", "x"],
            "-ERR value is not an integer or out of range\r\n",
        ),
        (
            &["REPLCONF", "rdb-filter-only", "functions foo"],
            "-ERR Unsupported rdb-filter-only option: foo\r\n",
        ),
        (&["REPLCONF", "rdb-filter-only", "functions"], "+OK\r\n"),
        (&["REPLCONF", "rdb-only", "0"], "+OK\r\n"),
    ];
    for (argv, want) in table {
        assert_eq!(r(&mut node, argv), want, "{argv:?}");
    }
    assert_eq!(node.replica(LinkId(1)).unwrap().listening_port(), 7003);
    assert_eq!(
        node.replica(LinkId(1)).unwrap().filter(),
        RdbFilter {
            data: false,
            functions: true
        }
    );
    // ACK and GETACK never reply, not even from a client that is not a replica.
    assert_eq!(
        cmd(&mut node, now, 1, &["REPLCONF", "ACK", "5"]),
        Handled::NoReply
    );
    assert_eq!(
        node.replica(LinkId(1)).unwrap().ack_offset(),
        ReplOffset::new(0)
    );
    assert_eq!(
        cmd(&mut node, now, 1, &["REPLCONF", "GETACK", "*"]),
        Handled::NoReply
    );
    assert_eq!(cmd(&mut node, now, 1, &["GET", "x"]), Handled::NotMine);
    assert!(events(&mut node).is_empty());
}

#[test]
fn noauth_gets_the_error_and_nothing_else() {
    let now = Instant::now();
    let mut node = Node::new(disk(), now);
    let anon = Caller {
        authenticated: false,
        ..Caller::default()
    };
    for argv in [
        &["PSYNC", "?", "-1"][..],
        &["SYNC"],
        &["REPLCONF", "listening-port", "1"],
        &["ROLE"],
    ] {
        let v: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(
            node.handle_command(now, LinkId(1), &anon, &v),
            Handled::Reply(Bytes::from_static(b"-NOAUTH Authentication required.\r\n")),
            "{argv:?}"
        );
    }
    assert!(node.replica(LinkId(1)).is_none());
    assert!(node.backlog().is_none());
    assert!(events(&mut node).is_empty());
    assert_eq!(node.stats().sync_full, 0);
}

#[test]
fn arity_is_checked_before_authentication() {
    // Redis's processCommand checks arity before NOAUTH (protocol.md §1.4, order matters).
    let now = Instant::now();
    let mut node = Node::new(disk(), now);
    let anon = Caller {
        authenticated: false,
        ..Caller::default()
    };
    let v: [&[u8]; 2] = [b"PSYNC", b"?"];
    assert_eq!(
        node.handle_command(now, LinkId(1), &anon, &v),
        Handled::Reply(Bytes::from_static(
            b"-ERR wrong number of arguments for 'psync' command\r\n"
        ))
    );
}

#[test]
fn sync_and_psync_pre_checks() {
    let now = Instant::now();
    let mut node = Node::new(disk(), now);
    assert_eq!(
        reply(&mut node, now, 1, &["PSYNC", "?"]),
        "-ERR wrong number of arguments for 'psync' command\r\n"
    );
    assert_eq!(
        reply(&mut node, now, 1, &["SYNC", "x"]),
        "-ERR wrong number of arguments for 'sync' command\r\n"
    );
    assert_eq!(
        reply(&mut node, now, 1, &["ROLE", "x"]),
        "-ERR wrong number of arguments for 'role' command\r\n"
    );
    let in_multi = Caller {
        in_multi: true,
        ..Caller::default()
    };
    for argv in [&[&b"PSYNC"[..], b"?", b"-1"][..], &[b"SYNC"]] {
        assert_eq!(
            node.handle_command(now, LinkId(1), &in_multi, argv),
            Handled::Reply(Bytes::from_static(
                b"-ERR Command not allowed inside a transaction\r\n"
            ))
        );
    }
    assert_eq!(
        reply(&mut node, now, 1, &["PSYNC", "?", "abc"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    assert_eq!(
        reply(&mut node, now, 1, &["PSYNC", "?", "01"]),
        "-ERR value is not an integer or out of range\r\n"
    );
    let id = node.ids().id.to_string();
    assert_eq!(
        reply(&mut node, now, 1, &["PSYNC", &id, "5", "FAILOVER"]),
        "-ERR PSYNC FAILOVER can't be sent to a master.\r\n"
    );
    assert_eq!(
        reply(&mut node, now, 1, &["PSYNC", &id, "5", "failover"]),
        "-ERR PSYNC FAILOVER can't be sent to a master.\r\n"
    );
    // None of that started anything.
    assert!(events(&mut node).is_empty());
    assert_eq!(node.stats().sync_full + node.stats().sync_partial_err, 0);
    assert!(node.backlog().is_none());

    // A filtered request needs `capa eof`.
    assert_eq!(
        reply(&mut node, now, 2, &["REPLCONF", "rdb-filter-only", ""]),
        "+OK\r\n"
    );
    assert_eq!(
        reply(&mut node, now, 2, &["SYNC"]),
        "-ERR Filtered replica requires EOF capability\r\n"
    );

    // A second PSYNC/SYNC on a replica link is ignored without a reply.
    assert_eq!(
        cmd(&mut node, now, 1, &["PSYNC", "?", "-1"]),
        Handled::ReplicaLink
    );
    let before = node.stats().sync_full;
    assert_eq!(
        cmd(&mut node, now, 1, &["PSYNC", "?", "-1"]),
        Handled::NoReply
    );
    assert_eq!(cmd(&mut node, now, 1, &["SYNC"]), Handled::NoReply);
    assert_eq!(node.stats().sync_full, before);
    assert_eq!(requested(&mut node).1, SnapshotTarget::Disk);
    assert!(events(&mut node).is_empty());
}

// ------------------------------------------------------------------ §2 partial resync

/// A node restored from an RDB with `repl-id` = `old` at offset 1000 (so `replid2` = `old`,
/// `second_repl_offset` = 1001, backlog empty at 1001).
fn restored(now: Instant, size: u64) -> (Node, String) {
    let old = ReplId::parse(&[b'a'; 40]).unwrap();
    let cfg = NodeConfig {
        backlog_size: size,
        ..disk()
    };
    let node = Node::restored(cfg, now, old, ReplOffset::new(1000));
    assert_eq!(node.ids().id2, old);
    assert_eq!(node.ids().second_offset, ReplOffset::new(1001));
    assert_ne!(node.ids().id, old);
    (node, old.to_string())
}

#[test]
fn partial_resync_boundaries_with_replid2() {
    let now = Instant::now();
    let (mut node, old) = restored(now, 16 * 1024);
    let cur = node.ids().id.to_string();
    let t = node.info_replication_master(now);
    assert!(t.contains(&format!(
        "master_replid:{cur}\r\nmaster_replid2:{old}\r\nmaster_repl_offset:1000\r\nsecond_repl_offset:1001\r\nrepl_backlog_active:1\r\nrepl_backlog_size:16384\r\nrepl_backlog_first_byte_offset:1001\r\nrepl_backlog_histlen:0\r\n"
    )), "{t}");

    // Old id up to second_repl_offset: continue, zero bytes, current id announced.
    assert_eq!(
        psync(&mut node, now, 1, true, &old, 1001),
        Handled::ReplicaLink
    );
    assert_eq!(text(&drain(&mut node, 1)), format!("+CONTINUE {cur}\r\n"));
    // One past it: the id no longer matches.
    assert_eq!(
        psync(&mut node, now, 2, true, &old, 1002),
        Handled::ReplicaLink
    );
    assert_eq!(drain(&mut node, 2), b"");
    assert_eq!(
        node.replica(LinkId(2)).unwrap().state(),
        ReplicaState::WaitBgsaveStart
    );
    // Below the backlog's first byte: full.
    assert_eq!(
        psync(&mut node, now, 3, true, &old, 1000),
        Handled::ReplicaLink
    );
    assert_eq!(
        node.replica(LinkId(3)).unwrap().state(),
        ReplicaState::WaitBgsaveStart
    );
    assert_eq!(
        (
            node.stats().sync_partial_ok,
            node.stats().sync_partial_err,
            node.stats().sync_full
        ),
        (1, 2, 2)
    );
    assert_eq!(requested(&mut node).1, SnapshotTarget::Disk);

    // Now some history: SELECT 0 + SET k v = 50 bytes, offsets 1001..=1050.
    node.propagate(0, &["SET", "k", "v"]);
    assert_eq!(drain(&mut node, 1), cat(&[SELECT0, SET_KV]));
    assert_eq!(node.offset(), ReplOffset::new(1050));
    let upper = cur.to_uppercase();
    let cases: [(u64, &str, i64, Option<&[u8]>); 7] = [
        (10, &cur, 1051, Some(b"")), // master_repl_offset + 1: zero bytes
        (11, &cur, 1052, None),      // beyond: full
        (12, &cur, 1001, Some(&[SELECT0, SET_KV].concat())), // first byte: everything
        (13, &upper, 1024, Some(SET_KV)), // ids compare case-insensitively
        (14, &old, 1001, Some(&[SELECT0, SET_KV].concat())), // replid2 path, same bytes
        (15, &old, 1002, None),      // replid2 beyond second_repl_offset
        (16, "?", -1, None),         // `?` is not an error
    ];
    let stats0 = *node.stats();
    for (link, id, off, want) in cases {
        assert_eq!(
            psync(&mut node, now, link, true, id, off),
            Handled::ReplicaLink
        );
        let got = drain(&mut node, link);
        match want {
            Some(bytes) => {
                assert_eq!(
                    got,
                    cat(&[format!("+CONTINUE {cur}\r\n").as_bytes(), bytes])
                );
                assert_eq!(
                    node.replica(LinkId(link)).unwrap().state(),
                    ReplicaState::Online
                );
            }
            None => assert_eq!(got, b"", "{link}"),
        }
    }
    let st = node.stats();
    assert_eq!(st.sync_partial_ok - stats0.sync_partial_ok, 4);
    assert_eq!(st.sync_partial_err - stats0.sync_partial_err, 2);
    assert_eq!(st.sync_full - stats0.sync_full, 3);
}

#[test]
fn below_the_first_byte_of_a_trimmed_backlog_is_refused() {
    let now = Instant::now();
    let (mut node, _) = restored(now, 16 * 1024);
    let cur = node.ids().id.to_string();
    let value = "x".repeat(1000);
    for i in 0..40 {
        node.propagate(0, &["SET", &format!("k{i}"), &value]);
    }
    // Flush pending bytes into the backlog (any link poll does).
    assert!(node.poll_transmit(LinkId(99)).is_none());
    let b = node.backlog().unwrap();
    assert_eq!(b.histlen(), 16 * 1024);
    assert_eq!(b.end(), node.offset());
    let first = b.first().value();
    let whole: Vec<u8> = b.range(b.first()).unwrap().flatten().collect();
    assert_eq!(
        psync(&mut node, now, 1, false, &cur, first - 1),
        Handled::ReplicaLink
    );
    assert_eq!(drain(&mut node, 1), b"");
    assert_eq!(node.stats().sync_partial_err, 1);
    assert_eq!(
        psync(&mut node, now, 2, false, &cur, first),
        Handled::ReplicaLink
    );
    // Without capa psync2: a bare +CONTINUE.
    assert_eq!(drain(&mut node, 2), cat(&[b"+CONTINUE\r\n", &whole]));
    assert_eq!(whole.len(), 16 * 1024);
}

// ------------------------------------------------------------------ §3 full sync

#[test]
fn disk_full_sync_then_stream_right_after_the_file() {
    let t0 = Instant::now();
    let mut node = Node::new(disk(), t0);
    let before = node.ids().id;
    assert_eq!(psync(&mut node, t0, 1, true, "?", -1), Handled::ReplicaLink);
    // The first replica ever starts a new history with a backlog (§2.3).
    assert_ne!(node.ids().id, before);
    assert!(node.backlog().is_some());
    let (snap, target, filter) = requested(&mut node);
    assert_eq!((target, filter), (SnapshotTarget::Disk, RdbFilter::ALL));
    assert_eq!(drain(&mut node, 1), b"", "+FULLRESYNC is deferred");
    assert!(info(&node, t0).contains("slave0:ip=,port=7001,state=wait_bgsave,offset=0,lag=0\r\n"));
    node.handle_timeout(t0 + SECOND);
    assert_eq!(drain(&mut node, 1), b"\n");
    let start = node.handle_snapshot_started(t0 + SECOND, snap).unwrap();
    assert_eq!(start.offset, ReplOffset::new(0));
    assert_eq!(start.replid, node.ids().id);
    node.propagate(0, &["SET", "k", "v"]);
    node.handle_timeout(t0 + 2 * SECOND);
    // Keepalives continue while a disk snapshot is being written.
    assert_eq!(
        text(&drain(&mut node, 1)),
        format!("+FULLRESYNC {} 0\r\n\n", start.replid)
    );
    node.handle_snapshot_file(t0 + 2 * SECOND, snap, RDB.len() as u64)
        .unwrap();
    assert!(info(&node, t0).contains("state=send_bulk"));
    assert_eq!(
        node.poll_transmit(LinkId(1)),
        Some(Transmit::Bytes(Bytes::from_static(b"$18\r\n")))
    );
    assert_eq!(
        node.poll_transmit(LinkId(1)),
        Some(Transmit::File {
            snapshot: snap,
            len: 18
        })
    );
    // Nothing else until the file is written.
    node.propagate(0, &["SET", "k", "v"]);
    assert_eq!(node.poll_transmit(LinkId(1)), None);
    node.handle_timeout(t0 + 3 * SECOND);
    assert_eq!(
        node.poll_transmit(LinkId(1)),
        None,
        "no keepalive in send_bulk"
    );
    node.handle_file_sent(t0 + 3 * SECOND, LinkId(1));
    assert_eq!(drain(&mut node, 1), cat(&[SELECT0, SET_KV, SET_KV]));
    assert_eq!(
        node.replica(LinkId(1)).unwrap().state(),
        ReplicaState::Online
    );
    assert_eq!(node.offset(), ReplOffset::new(23 + 27 + 27));
    assert_eq!(node.stats().sync_full, 1);
    assert_eq!(node.stats().snapshots, 1);
    assert!(events(&mut node).is_empty());
}

#[test]
fn handshake_capture_of_protocol_md_1_5() {
    // The real 7.0.15 replica's bytes of §1.5 against a master at offset 1000, decoded as an
    // application would.
    let t0 = Instant::now();
    let (mut node, _) = restored(t0, 1024 * 1024);
    let mut input = BytesMut::new();
    input.extend_from_slice(
        b"*1\r\n$4\r\nPING\r\n*3\r\n$4\r\nAUTH\r\n$8\r\nrepluser\r\n$6\r\nsekret\r\n",
    );
    input.extend_from_slice(b"*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n7002\r\n");
    input.extend_from_slice(b"*3\r\n$8\r\nREPLCONF\r\n$10\r\nip-address\r\n$8\r\n10.9.9.9\r\n");
    input.extend_from_slice(
        b"*5\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n",
    );
    input.extend_from_slice(
        b"*3\r\n$5\r\nPSYNC\r\n$40\r\n7a81a83af48c8fb429245b3228cc826f9eed4370\r\n$1\r\n1\r\n",
    );
    let mut dec = Decoder::default();
    let mut replies = Vec::new();
    let mut outcome = Vec::new();
    while let Some(c) = dec.decode_request(&mut input).unwrap() {
        let h = node.handle_command(t0, LinkId(1), &me(), &c.argv);
        if let Handled::Reply(b) = &h {
            replies.extend_from_slice(b);
        }
        outcome.push(h);
    }
    assert_eq!(outcome[0], Handled::NotMine); // PING: the application answers
    assert_eq!(outcome[1], Handled::NotMine); // AUTH too
    assert_eq!(replies, b"+OK\r\n+OK\r\n+OK\r\n");
    assert_eq!(outcome[5], Handled::ReplicaLink);
    // Its own random id: a full sync, and an error for sync_partial_err.
    assert_eq!(node.stats().sync_partial_err, 1);
    let (snap, _, _) = requested(&mut node);
    let start = node.handle_snapshot_started(t0, snap).unwrap();
    assert_eq!(start.offset, ReplOffset::new(1000));
    node.propagate(0, &["set", "foo", "bar"]);
    node.handle_snapshot_file(t0, snap, RDB.len() as u64)
        .unwrap();
    let wire = drain_file(&mut node, t0, 1, RDB);
    let mut want = format!("+FULLRESYNC {} 1000\r\n$18\r\n", start.replid).into_bytes();
    want.extend_from_slice(RDB);
    want.extend_from_slice(SELECT0);
    want.extend_from_slice(b"*3\r\n$3\r\nset\r\n$3\r\nfoo\r\n$3\r\nbar\r\n");
    assert_eq!(text(&wire), text(&want));
    // The capture's ACK: 1000 + 23 + 31.
    node.handle_input(
        t0,
        LinkId(1),
        b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$4\r\n1054\r\n",
    );
    assert_eq!(
        node.replica(LinkId(1)).unwrap().ack_offset(),
        ReplOffset::new(1054)
    );
    assert_eq!(node.offset(), ReplOffset::new(1054));
    assert!(
        info(&node, t0).contains("slave0:ip=10.9.9.9,port=7002,state=online,offset=1054,lag=0\r\n")
    );
}

/// Splits an `$EOF:` transfer into (header, body, mark) and checks the framing.
fn eof_parts(wire: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let w = text(wire);
    let at = w.find("$EOF:").expect("EOF header");
    let mark = &wire[at + 5..at + 45];
    assert!(mark
        .iter()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_eq!(&wire[at + 45..at + 47], b"\r\n");
    let body = &wire[at + 47..];
    let end = body
        .windows(40)
        .position(|w| w == mark)
        .expect("closing mark");
    (
        wire[..at].to_vec(),
        [&body[..end], &body[end + 40..]].concat(),
    )
}

#[test]
fn diskless_full_sync_waits_for_the_first_ack() {
    let t0 = Instant::now();
    let mut node = Node::new(diskless(Duration::ZERO), t0);
    assert_eq!(psync(&mut node, t0, 1, true, "?", -1), Handled::ReplicaLink);
    let (snap, target, _) = requested(&mut node);
    assert_eq!(target, SnapshotTarget::Socket);
    let start = node.handle_snapshot_started(t0, snap).unwrap();
    node.propagate(0, &["SET", "k", "v"]);
    node.handle_snapshot_chunk(t0, snap, Bytes::from_static(&RDB[..9]))
        .unwrap();
    // No keepalive during a socket transfer.
    node.handle_timeout(t0 + SECOND);
    node.handle_snapshot_chunk(t0 + SECOND, snap, Bytes::from_static(&RDB[9..]))
        .unwrap();
    node.handle_snapshot_end(t0 + SECOND, snap).unwrap();
    let wire = drain(&mut node, 1);
    let head = format!("+FULLRESYNC {} 0\r\n", start.replid);
    assert!(text(&wire).starts_with(&format!("{head}$EOF:")));
    assert_eq!(wire.len(), head.len() + 47 + RDB.len() + 40);
    let (pre, rest) = eof_parts(&wire);
    assert_eq!(pre, head.as_bytes());
    assert_eq!(rest, RDB, "the mark is the last thing on the wire");
    // "online" in INFO with lag, but no stream byte before the ACK, whatever time passes.
    node.propagate(0, &["SET", "k", "v"]);
    node.handle_timeout(t0 + 4 * SECOND);
    assert_eq!(drain(&mut node, 1), b"");
    assert!(info(&node, t0 + 4 * SECOND).contains("state=online,offset=0,lag=3\r\n"));
    assert_eq!(node.links_with_output(), Vec::<LinkId>::new());
    ack(&mut node, t0 + 4 * SECOND, 1, 0);
    assert_eq!(drain(&mut node, 1), cat(&[SELECT0, SET_KV, SET_KV]));
    assert_eq!(
        node.replica(LinkId(1)).unwrap().state(),
        ReplicaState::Online
    );
}

#[test]
fn capture_a1_keepalives_then_fullresync_14() {
    // Appendix A.1: delay 2 s, three `\n`, then `+FULLRESYNC <id> 14` (one ping counted while
    // waiting), then `$EOF:`.
    let t0 = Instant::now();
    let cfg = NodeConfig {
        ping_period: 2 * SECOND,
        ..diskless(2 * SECOND)
    };
    let mut node = Node::new(cfg, t0);
    let t = t0 + SECOND / 2;
    assert_eq!(psync(&mut node, t, 1, true, "?", -1), Handled::ReplicaLink);
    assert!(events(&mut node).is_empty());
    for k in 1..=3 {
        node.handle_timeout(t0 + k * SECOND);
        if k < 3 {
            assert!(events(&mut node).is_empty(), "tick {k}");
        }
    }
    let (snap, _, _) = requested(&mut node);
    let start = node.handle_snapshot_started(t0 + 3 * SECOND, snap).unwrap();
    assert_eq!(start.offset, ReplOffset::new(14));
    let wire = text(&drain(&mut node, 1));
    assert!(
        wire.starts_with(&format!("\n\n\n+FULLRESYNC {} 14\r\n$EOF:", start.replid)),
        "{wire:?}"
    );
    // The ping is in the backlog, not on this replica's wire.
    let b = node.backlog().unwrap();
    assert_eq!(
        b.range(b.first()).unwrap().flatten().collect::<Vec<u8>>(),
        PING
    );
}

#[test]
fn replicas_arriving_during_a_disk_snapshot_share_it() {
    let t0 = Instant::now();
    let mut node = Node::new(disk(), t0);
    assert_eq!(
        psync(&mut node, t0, 1, false, "?", -1),
        Handled::ReplicaLink
    );
    let (snap, _, _) = requested(&mut node);
    node.propagate(0, &["SET", "k", "v"]); // before the snapshot: in the RDB
    let start = node.handle_snapshot_started(t0, snap).unwrap();
    assert_eq!(start.offset, ReplOffset::new(50));
    node.propagate(0, &["SET", "k", "v"]); // during: follows it
    for l in [2, 3] {
        assert_eq!(
            psync(&mut node, t0 + SECOND, l, true, "?", -1),
            Handled::ReplicaLink
        );
        node.propagate(1, &["SET", "k", "v"]);
    }
    assert!(events(&mut node).is_empty(), "no second snapshot");
    node.handle_snapshot_file(t0 + 2 * SECOND, snap, RDB.len() as u64)
        .unwrap();
    let select1 = s(&["SELECT", "1"]);
    let stream = cat(&[SELECT0, SET_KV, &select1, SET_KV, SET_KV]);
    for l in [1, 2, 3] {
        let wire = drain_file(&mut node, t0 + 2 * SECOND, l, RDB);
        let want = cat(&[
            format!("+FULLRESYNC {} 50\r\n$18\r\n", start.replid).as_bytes(),
            RDB,
            &stream,
        ]);
        assert_eq!(text(&wire), text(&want), "link {l}");
    }
    assert_eq!(node.stats().snapshots, 1);
    assert_eq!(node.stats().sync_full, 3);
}

#[test]
fn diskless_delay_max_replicas_and_late_arrivals() {
    let t0 = Instant::now();
    let mut node = Node::new(diskless(5 * SECOND), t0);
    assert_eq!(psync(&mut node, t0, 1, true, "?", -1), Handled::ReplicaLink);
    let t = t0 + SECOND * 5 / 2;
    for k in 1..=4 {
        let now = t0 + k * SECOND;
        if now > t && node.replica(LinkId(2)).is_none() {
            assert_eq!(psync(&mut node, t, 2, true, "?", -1), Handled::ReplicaLink);
        }
        node.handle_timeout(now);
        assert!(events(&mut node).is_empty(), "tick {k}: delay not over");
    }
    node.handle_timeout(t0 + 5 * SECOND);
    let (snap, target, _) = requested(&mut node);
    assert_eq!(target, SnapshotTarget::Socket);
    let start = node.handle_snapshot_started(t0 + 5 * SECOND, snap).unwrap();
    let w1 = text(&drain(&mut node, 1));
    let w2 = text(&drain(&mut node, 2));
    let full = format!("+FULLRESYNC {} {}\r\n$EOF:", start.replid, start.offset);
    assert!(w1.starts_with(&format!("\n\n\n\n\n{full}")), "{w1:?}");
    assert!(w2.starts_with(&format!("\n\n\n{full}")), "{w2:?}");
    assert_eq!(w1[5..], w2[3..], "same header and mark");

    // A third replica arriving mid-transfer waits for the next snapshot.
    let t3 = t0 + SECOND * 11 / 2;
    assert_eq!(psync(&mut node, t3, 3, true, "?", -1), Handled::ReplicaLink);
    node.handle_snapshot_chunk(t3, snap, Bytes::from_static(RDB))
        .unwrap();
    assert_eq!(drain(&mut node, 3), b"");
    node.handle_snapshot_end(t3, snap).unwrap();
    assert!(events(&mut node).is_empty(), "its own delay is not over");
    assert_eq!(drain(&mut node, 3), b"");
    for k in 6..=10 {
        node.handle_timeout(t0 + k * SECOND);
        assert!(events(&mut node).is_empty(), "tick {k}");
    }
    node.handle_timeout(t0 + 11 * SECOND);
    let (snap2, _, _) = requested(&mut node);
    assert_ne!(snap2, snap);
    let start2 = node
        .handle_snapshot_started(t0 + 11 * SECOND, snap2)
        .unwrap();
    let w3 = text(&drain(&mut node, 3));
    let want = format!("+FULLRESYNC {} {}\r\n$EOF:", start2.replid, start2.offset);
    assert!(
        w3.starts_with(&format!("\n\n\n\n\n\n{want}")),
        "keepalives at 6..=11 s: {w3:?}"
    );
    assert_ne!(
        w3[6 + want.len()..6 + want.len() + 40],
        w1[5 + full.len()..5 + full.len() + 40],
        "a new mark"
    );
    assert_eq!(node.stats().snapshots, 2);

    // max-replicas: the second replica starts it at once despite a long delay.
    let mut node = Node::new(
        NodeConfig {
            diskless_sync_max_replicas: 2,
            ..diskless(60 * SECOND)
        },
        t0,
    );
    assert_eq!(psync(&mut node, t0, 1, true, "?", -1), Handled::ReplicaLink);
    node.handle_timeout(t0 + SECOND);
    assert!(events(&mut node).is_empty());
    assert_eq!(
        psync(&mut node, t0 + SECOND, 2, true, "?", -1),
        Handled::ReplicaLink
    );
    let (snap, _, _) = requested(&mut node);
    node.handle_snapshot_started(t0 + SECOND, snap).unwrap();
    for l in [1, 2] {
        assert_eq!(
            node.replica(LinkId(l)).unwrap().state(),
            ReplicaState::WaitBgsaveEnd
        );
    }
}

// ------------------------------------------------------------------ §4 stream content

#[test]
fn ping_every_period_counted_in_the_offset_without_select() {
    let t0 = Instant::now();
    let mut node = online_disk(t0, &[1]);
    assert_eq!(node.offset(), ReplOffset::new(0));
    for k in 1..=9 {
        node.handle_timeout(t0 + k * SECOND);
        ack(&mut node, t0 + k * SECOND, 1, 0);
        assert_eq!(
            drain(&mut node, 1),
            b"",
            "tick {k}: no keepalive to online replicas"
        );
    }
    node.handle_timeout(t0 + 10 * SECOND);
    assert_eq!(drain(&mut node, 1), PING);
    assert_eq!(node.offset(), ReplOffset::new(14));
    // The stream db is unset after the snapshot: the next write selects, the ping did not.
    node.propagate(0, &["SET", "k", "v"]);
    for k in 11..=20 {
        node.handle_timeout(t0 + k * SECOND);
    }
    assert_eq!(drain(&mut node, 1), cat(&[SELECT0, SET_KV, PING]));
    assert_eq!(node.offset(), ReplOffset::new(14 + 50 + 14));
    assert_eq!(node.backlog().unwrap().end(), node.offset());
}

#[test]
fn getack_is_37_bytes_in_the_stream() {
    let t0 = Instant::now();
    let mut node = online_disk(t0, &[1]);
    node.request_acks();
    assert_eq!(GETACK.len(), 37);
    assert_eq!(drain(&mut node, 1), GETACK);
    assert_eq!(node.offset(), ReplOffset::new(37));
    // The replica answers with the offset before the GETACK (§4.4); WAIT counts it.
    ack(&mut node, t0, 1, 0);
    assert_eq!(node.replicas_acked(ReplOffset::new(37)), 0);
    ack(&mut node, t0, 1, 37);
    assert_eq!(node.replicas_acked(ReplOffset::new(37)), 1);
    // ACKs never go backwards.
    ack(&mut node, t0, 1, 5);
    assert_eq!(
        node.replica(LinkId(1)).unwrap().ack_offset(),
        ReplOffset::new(37)
    );
}

#[test]
fn without_a_backlog_nothing_moves_the_offset() {
    let t0 = Instant::now();
    let mut node = Node::new(disk(), t0);
    node.propagate(0, &["SET", "k", "v"]);
    node.propagate_transaction(&[(0, ["SET", "k", "v"])]);
    node.request_acks();
    for k in 1..=30 {
        node.handle_timeout(t0 + k * SECOND);
    }
    assert_eq!(node.offset(), ReplOffset::new(0));
    assert!(node.backlog().is_none());
    let t = info(&node, t0);
    assert!(t.contains("master_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n"), "{t}");
}

#[test]
fn transactions_stay_together_and_select_follows_db_changes() {
    let t0 = Instant::now();
    let mut node = online_disk(t0, &[1]);
    node.propagate_transaction(&[(3, vec!["set", "a", "1"]), (3, vec!["incr", "a"])]);
    node.propagate(3, &["set", "b", "2"]);
    node.propagate(12, &["set", "c", "3"]);
    let want = cat(&[
        &s(&["SELECT", "3"]),
        &s(&["MULTI"]),
        &s(&["set", "a", "1"]),
        &s(&["incr", "a"]),
        &s(&["EXEC"]),
        &s(&["set", "b", "2"]),
        b"*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n",
        &s(&["set", "c", "3"]),
    ]);
    assert_eq!(text(&drain(&mut node, 1)), text(&want));
    assert_eq!(node.offset().value(), want.len() as i64);
    assert_eq!(s(&["MULTI"]).len(), 15);
    assert_eq!(s(&["EXEC"]).len(), 14);
}

#[test]
fn select_again_after_each_new_snapshot() {
    let t0 = Instant::now();
    let mut node = online_disk(t0, &[1]);
    node.propagate(0, &["SET", "k", "v"]);
    node.propagate(0, &["SET", "k", "v"]);
    assert_eq!(drain(&mut node, 1), cat(&[SELECT0, SET_KV, SET_KV]));
    assert_eq!(
        psync(&mut node, t0, 2, false, "?", -1),
        Handled::ReplicaLink
    );
    let (snap, _, _) = requested(&mut node);
    let start = node.handle_snapshot_started(t0, snap).unwrap();
    assert_eq!((start.offset, start.stream_db), (ReplOffset::new(77), 0));
    node.propagate(0, &["SET", "k", "v"]);
    assert_eq!(drain(&mut node, 1), cat(&[SELECT0, SET_KV]));
    node.handle_snapshot_file(t0, snap, 18).unwrap();
    let wire = drain_file(&mut node, t0, 2, RDB);
    assert!(wire.ends_with(&cat(&[RDB, SELECT0, SET_KV])));
}

// ------------------------------------------------------------------ §9 timeouts and limits

#[test]
fn repl_timeout_drops_silent_online_replicas_but_not_legacy_sync() {
    let t0 = Instant::now();
    let mut node = online_disk(t0, &[1, 2]);
    // A legacy SYNC client online too.
    assert_eq!(cmd(&mut node, t0, 3, &["SYNC"]), Handled::ReplicaLink);
    let (snap, _, _) = requested(&mut node);
    node.handle_snapshot_started(t0, snap).unwrap();
    node.handle_snapshot_file(t0, snap, 18).unwrap();
    let wire = drain_file(&mut node, t0, 3, RDB);
    assert_eq!(wire, cat(&[b"$18\r\n", RDB]), "no +FULLRESYNC for SYNC");
    assert!(node.replica(LinkId(3)).unwrap().is_legacy_sync());
    for k in 1..=60 {
        let now = t0 + k * SECOND;
        node.handle_timeout(now);
        // Replica 2 stays alive with `\n` only.
        node.handle_input(now, LinkId(2), b"\n");
    }
    assert!(
        events(&mut node).is_empty(),
        "60 s is not more than repl-timeout"
    );
    node.handle_timeout(t0 + 61 * SECOND);
    assert_eq!(
        events(&mut node),
        vec![NodeEvent::Close {
            link: LinkId(1),
            reason: CloseReason::Timeout
        }]
    );
    assert!(node.replica(LinkId(1)).is_none());
    node.handle_timeout(t0 + 200 * SECOND);
    let ev = events(&mut node);
    assert_eq!(
        ev,
        vec![NodeEvent::Close {
            link: LinkId(2),
            reason: CloseReason::Timeout
        }]
    );
    assert_eq!(node.stats().timeout_drops, 2);
    assert_eq!(
        node.replica(LinkId(3)).unwrap().state(),
        ReplicaState::Online
    );
}

#[test]
fn hard_output_limit_drops_a_replica_that_never_reads_and_memory_returns() {
    let t0 = Instant::now();
    let cfg = NodeConfig {
        backlog_size: 16 * 1024,
        output_buffer_limit: OutputBufferLimit {
            hard: 64 * 1024,
            soft: 0,
            soft_duration: Duration::ZERO,
        },
        ..disk()
    };
    let mut node = online_with(cfg, t0, &[1, 2]);
    let value = "v".repeat(1000);
    let mut max_hist = 0;
    let mut got = Vec::new();
    let mut dropped_at = None;
    for i in 0..200 {
        node.propagate(0, &["SET", &format!("key{i:04}"), &value]);
        got.extend(drain(&mut node, 2)); // replica 2 reads, replica 1 never does
        max_hist = max_hist.max(node.backlog().unwrap().histlen());
        let ev = events(&mut node);
        if !ev.is_empty() {
            assert!(dropped_at.is_none());
            match ev.as_slice() {
                [NodeEvent::Close {
                    link: LinkId(1),
                    reason: CloseReason::OutputBufferHard { pending, limit },
                }] => {
                    assert_eq!(*limit, 64 * 1024);
                    assert!(*pending > 64 * 1024 && *pending < 64 * 1024 + 1100);
                }
                other => panic!("{other:?}"),
            }
            node.handle_disconnect(t0, LinkId(1));
            dropped_at = Some(i);
        }
    }
    assert!(dropped_at.is_some());
    assert_eq!(node.stats().output_buffer_drops, 1);
    assert!(max_hist <= 64 * 1024 + 1100, "{max_hist}");
    assert_eq!(node.backlog().unwrap().histlen(), 16 * 1024);
    // Replica 2 got the whole stream.
    assert_eq!(got.len() as i64, node.offset().value());
}

#[test]
fn soft_output_limit_needs_its_duration() {
    let t0 = Instant::now();
    let cfg = NodeConfig {
        backlog_size: 16 * 1024,
        output_buffer_limit: OutputBufferLimit {
            hard: 0,
            soft: 20 * 1024,
            soft_duration: 10 * SECOND,
        },
        ..disk()
    };
    let mut node = online_with(cfg, t0, &[1]);
    let value = "v".repeat(1000);
    let fill = |node: &mut Node, n: usize| {
        for i in 0..n {
            node.propagate(0, &["SET", &format!("key{i:04}"), &value]);
        }
        node.links_with_output();
    };
    // Above the soft limit for 9 s, then back under it: kept.
    fill(&mut node, 30);
    for k in 1..=9 {
        node.handle_timeout(t0 + k * SECOND);
        ack(&mut node, t0 + k * SECOND, 1, 0);
    }
    assert!(events(&mut node).is_empty());
    drain(&mut node, 1);
    node.handle_timeout(t0 + 10 * SECOND);
    // Above it again: the clock restarts.
    fill(&mut node, 30);
    for k in 11..=20 {
        node.handle_timeout(t0 + k * SECOND);
        ack(&mut node, t0 + k * SECOND, 1, 0);
        assert!(
            events(&mut node).is_empty(),
            "tick {k}: not more than 10 s yet"
        );
    }
    node.handle_timeout(t0 + 21 * SECOND);
    match events(&mut node).as_slice() {
        [NodeEvent::Close {
            link: LinkId(1),
            reason: CloseReason::OutputBufferSoft { limit, .. },
        }] => assert_eq!(*limit, 20 * 1024),
        other => panic!("{other:?}"),
    }
}

#[test]
fn backlog_ttl_frees_the_backlog_and_changes_the_replid() {
    let t0 = Instant::now();
    let cfg = NodeConfig {
        backlog_ttl: 10 * SECOND,
        ..disk()
    };
    let mut node = online_with(cfg, t0, &[1]);
    node.propagate(0, &["SET", "k", "v"]);
    drain(&mut node, 1);
    let id = node.ids().id;
    let gone = t0 + 5 * SECOND;
    node.handle_disconnect(gone, LinkId(1));
    for k in 6..=15 {
        node.handle_timeout(t0 + k * SECOND);
    }
    // Freed once the time without replicas is *more* than the TTL, as Redis compares.
    assert!(node.backlog().is_some(), "10 s without replicas");
    node.handle_timeout(t0 + 16 * SECOND);
    assert!(node.backlog().is_none());
    assert_ne!(node.ids().id, id);
    assert_eq!(node.ids().id2, ReplId::ZERO);
    assert_eq!(node.offset(), ReplOffset::new(50));
    node.propagate(0, &["SET", "k", "v"]);
    assert_eq!(node.offset(), ReplOffset::new(50));
    // The old history is gone: a full sync, counted as a refused partial one.
    let old = id.to_string();
    assert_eq!(
        psync(&mut node, t0 + 17 * SECOND, 2, false, &old, 51),
        Handled::ReplicaLink
    );
    assert_eq!(node.stats().sync_partial_err, 1);
    assert_eq!(
        node.replica(LinkId(2)).unwrap().state(),
        ReplicaState::WaitBgsaveStart
    );
}

// ------------------------------------------------------------------ §1.6 / §3.6 clients

#[test]
fn rdb_only_client_gets_the_snapshot_then_close() {
    for diskless_mode in [false, true] {
        let t0 = Instant::now();
        let cfg = if diskless_mode {
            diskless(Duration::ZERO)
        } else {
            disk()
        };
        let mut node = Node::new(cfg, t0);
        assert_eq!(
            reply(&mut node, t0, 1, &["REPLCONF", "capa", "eof"]),
            "+OK\r\n"
        );
        assert_eq!(
            reply(&mut node, t0, 1, &["REPLCONF", "rdb-only", "1"]),
            "+OK\r\n"
        );
        assert_eq!(cmd(&mut node, t0, 1, &["SYNC"]), Handled::ReplicaLink);
        let (snap, target, filter) = requested(&mut node);
        assert_eq!(filter, RdbFilter::ALL);
        node.handle_snapshot_started(t0, snap).unwrap();
        node.propagate(0, &["SET", "k", "v"]);
        let wire = if diskless_mode {
            assert_eq!(target, SnapshotTarget::Socket);
            node.handle_snapshot_chunk(t0, snap, Bytes::from_static(RDB))
                .unwrap();
            node.handle_snapshot_end(t0, snap).unwrap();
            let w = drain(&mut node, 1);
            let (pre, rest) = eof_parts(&w);
            assert_eq!((pre, rest), (Vec::new(), RDB.to_vec()));
            w
        } else {
            assert_eq!(target, SnapshotTarget::Disk);
            node.handle_snapshot_file(t0, snap, 18).unwrap();
            let w = drain_file(&mut node, t0, 1, RDB);
            assert_eq!(w, cat(&[b"$18\r\n", RDB]));
            w
        };
        assert!(!text(&wire).contains("SET"));
        let ev = events(&mut node);
        assert_eq!(
            ev,
            vec![NodeEvent::Close {
                link: LinkId(1),
                reason: CloseReason::RdbTransmitted
            }]
        );
        let NodeEvent::Close { reason, .. } = &ev[0] else {
            unreachable!()
        };
        assert!(reason.flush_first());
        node.propagate(0, &["SET", "k", "v"]);
        assert_eq!(drain(&mut node, 1), b"");
        // Hidden from INFO's slave lines.
        assert!(!info(&node, t0).contains("slave0:"));
        node.handle_disconnect(t0, LinkId(1));
    }
}

#[test]
fn redis_cli_replica_sequence() {
    let t0 = Instant::now();
    let mut node = Node::new(diskless(Duration::ZERO), t0);
    let mut input = BytesMut::from(
        &cat(&[
            &s(&["REPLCONF", "capa", "eof"]),
            &s(&["REPLCONF", "rdb-filter-only", ""]),
            b"SYNC\r\n",
        ])[..],
    );
    let mut dec = Decoder::default();
    let mut out = Vec::new();
    let mut last = None;
    while let Some(c) = dec.decode_request(&mut input).unwrap() {
        let h = node.handle_command(t0, LinkId(1), &me(), &c.argv);
        if let Handled::Reply(b) = &h {
            out.extend_from_slice(b);
        }
        last = Some(h);
    }
    assert_eq!(out, b"+OK\r\n+OK\r\n");
    assert_eq!(last, Some(Handled::ReplicaLink));
    let (snap, target, filter) = requested(&mut node);
    assert_eq!(target, SnapshotTarget::Socket);
    assert_eq!(
        filter,
        RdbFilter {
            data: false,
            functions: false
        }
    );
    node.handle_snapshot_started(t0, snap).unwrap();
    node.propagate(0, &["SET", "k", "v"]);
    node.handle_snapshot_chunk(t0, snap, Bytes::from_static(RDB))
        .unwrap();
    node.handle_snapshot_end(t0, snap).unwrap();
    let (pre, rest) = eof_parts(&drain(&mut node, 1));
    assert_eq!((pre, rest), (Vec::new(), RDB.to_vec()));
    // It sleeps a second, then asks for the stream with `REPLCONF ACK 0`.
    node.handle_timeout(t0 + SECOND);
    assert_eq!(drain(&mut node, 1), b"");
    ack(&mut node, t0 + SECOND, 1, 0);
    node.propagate(0, &["SET", "k", "v"]);
    assert_eq!(drain(&mut node, 1), cat(&[SELECT0, SET_KV, SET_KV]));
    // Exempt from the ACK timeout, and listed with port 0.
    for k in 2..=200 {
        node.handle_timeout(t0 + k * SECOND);
    }
    assert!(events(&mut node).is_empty());
    assert!(info(&node, t0 + 200 * SECOND)
        .contains("slave0:ip=,port=0,state=online,offset=0,lag=199\r\n"));
}

// ------------------------------------------------------------------ §10 INFO and ROLE

#[test]
fn info_lines_and_role_reply() {
    let t0 = Instant::now();
    let mut node = Node::new(disk(), t0);
    let peer = |ip: &str| Caller {
        peer_ip: Some(ip.to_owned()),
        ..Caller::default()
    };
    for (l, ip) in [(1, "10.0.0.1"), (2, "10.0.0.2")] {
        let port = (7000 + l).to_string();
        let v: [&[u8]; 3] = [b"REPLCONF", b"listening-port", port.as_bytes()];
        node.handle_command(t0, LinkId(l), &peer(ip), &v);
        let v: [&[u8]; 3] = [b"PSYNC", b"?", b"-1"];
        assert_eq!(
            node.handle_command(t0, LinkId(l), &peer(ip), &v),
            Handled::ReplicaLink
        );
    }
    let (snap, _, _) = requested(&mut node);
    node.handle_snapshot_started(t0, snap).unwrap();
    node.propagate(0, &["SET", "k", "v"]);
    node.handle_snapshot_file(t0, snap, 18).unwrap();
    // Replica 1 is handed the file and stays in send_bulk; replica 2 completes.
    let mut wire = Vec::new();
    loop {
        match node.poll_transmit(LinkId(1)) {
            Some(Transmit::Bytes(b)) => wire.extend_from_slice(&b),
            Some(Transmit::File { .. }) => break,
            None => panic!("no file"),
        }
    }
    assert!(text(&wire).ends_with(" 0\r\n$18\r\n"));
    drain_file(&mut node, t0, 2, RDB);
    // Replica 3 announces an address and waits for the next snapshot.
    assert_eq!(
        reply(&mut node, t0, 3, &["REPLCONF", "ip-address", "192.168.1.9"]),
        "+OK\r\n"
    );
    assert_eq!(
        psync(&mut node, t0, 3, false, "?", -1),
        Handled::ReplicaLink
    );
    let t = t0 + 3 * SECOND;
    node.handle_input(t0 + 2 * SECOND, LinkId(2), &s(&["REPLCONF", "ACK", "50"]));
    let id = node.ids().id;
    let want = format!(
        "# Replication\r\nrole:master\r\nconnected_slaves:3\r\n\
         slave0:ip=10.0.0.1,port=7001,state=send_bulk,offset=0,lag=0\r\n\
         slave1:ip=10.0.0.2,port=7002,state=online,offset=50,lag=1\r\n\
         slave2:ip=192.168.1.9,port=7003,state=wait_bgsave,offset=0,lag=0\r\n\
         master_failover_state:no-failover\r\nmaster_replid:{id}\r\n\
         master_replid2:0000000000000000000000000000000000000000\r\n\
         master_repl_offset:50\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:1\r\n\
         repl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:1\r\n\
         repl_backlog_histlen:50\r\n"
    );
    assert_eq!(node.info_replication_master(t), want);
    assert_eq!(
        text(&node.role_reply(t)),
        "*3\r\n$6\r\nmaster\r\n:50\r\n*1\r\n*3\r\n$8\r\n10.0.0.2\r\n$4\r\n7002\r\n$2\r\n50\r\n"
    );
    assert_eq!(
        cmd(&mut node, t, 9, &["ROLE"]),
        Handled::Reply(node.role_reply(t))
    );
    // min-replicas: one good replica.
    node.config_mut().min_replicas_to_write = 2;
    assert!(node
        .info_replication_master(t)
        .contains("connected_slaves:3\r\nmin_slaves_good_slaves:1\r\nslave0:"));
    assert!(node.writes_refused(t));
    node.config_mut().min_replicas_to_write = 1;
    assert!(!node.writes_refused(t));
    assert!(node.writes_refused(t0 + 13 * SECOND), "lag 11 > 10");
}

// ------------------------------------------------------------------ zero-copy fan-out

#[test]
fn eight_replicas_read_slices_of_one_allocation() {
    let t0 = Instant::now();
    let links: Vec<u64> = (1..=8).collect();
    let mut node = online_disk(t0, &links);
    let value = "v".repeat(100);
    let mut per_link: Vec<Vec<(usize, usize)>> = vec![Vec::new(); 8];
    for round in 0..20 {
        for i in 0..10 {
            node.propagate(0, &["SET", &format!("k{round}:{i}"), &value]);
        }
        for (n, &l) in links.iter().enumerate() {
            while let Some(Transmit::Bytes(b)) = node.poll_transmit(LinkId(l)) {
                per_link[n].push((b.as_ptr() as usize, b.len()));
            }
        }
    }
    assert!(!per_link[0].is_empty());
    for other in &per_link[1..] {
        assert_eq!(
            other, &per_link[0],
            "every replica is handed the same memory"
        );
    }
    // And that memory is the backlog's own.
    let b = node.backlog().unwrap();
    let held: Vec<(usize, usize)> = b
        .range(b.first())
        .unwrap()
        .map(|c| (c.as_ptr() as usize, c.len()))
        .collect();
    let inside =
        |&(p, l): &(usize, usize)| held.iter().any(|&(hp, hl)| p >= hp && p + l <= hp + hl);
    assert!(per_link[0].iter().all(inside));
    assert_eq!(
        node.stats().repl_output_bytes,
        8 * node.offset().value() as u64
    );
}

// ------------------------------------------------------------------ property tests

/// What an application does with one connection: decode requests, hand them to the node until
/// it becomes a replica link, then feed the rest to `handle_input`.
struct App {
    dec: Decoder,
    buf: BytesMut,
    linked: bool,
    replies: Vec<u8>,
}

impl App {
    fn new() -> App {
        App {
            dec: Decoder::default(),
            buf: BytesMut::new(),
            linked: false,
            replies: Vec::new(),
        }
    }

    fn feed(&mut self, node: &mut Node, now: Instant, link: u64, data: &[u8]) {
        if self.linked {
            node.handle_input(now, LinkId(link), data);
            return;
        }
        self.buf.extend_from_slice(data);
        while let Some(c) = self.dec.decode_request(&mut self.buf).unwrap() {
            if c.argv.is_empty() {
                continue;
            }
            match node.handle_command(now, LinkId(link), &me(), &c.argv) {
                Handled::Reply(b) => self.replies.extend_from_slice(&b),
                Handled::NotMine => self.replies.extend_from_slice(b"+PONG\r\n"),
                Handled::NoReply => {}
                Handled::ReplicaLink => {
                    self.linked = true;
                    let rest = self.buf.split();
                    node.handle_input(now, LinkId(link), &rest);
                    return;
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

/// Feeds `input` in pieces cut at `cuts` (positions taken modulo the length).
fn feed_split(app: &mut App, node: &mut Node, now: Instant, input: &[u8], cuts: &[usize]) {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    at.push(0);
    at.push(input.len());
    at.sort_unstable();
    for w in at.windows(2) {
        app.feed(node, now, 1, &input[w[0]..w[1]]);
    }
}

#[derive(Debug, PartialEq)]
struct EndState {
    replies: Vec<u8>,
    wire: Vec<u8>,
    state: ReplicaState,
    ack: ReplOffset,
    port: i64,
    ip: String,
    events: Vec<NodeEvent>,
}

fn end_state(app: &App, node: &mut Node, wire: Vec<u8>) -> EndState {
    let r = node.replica(LinkId(1)).unwrap();
    EndState {
        replies: app.replies.clone(),
        wire,
        state: r.state(),
        ack: r.ack_offset(),
        port: r.listening_port(),
        ip: r.ip().to_owned(),
        events: events(node),
    }
}

fn handshake(psync: &[&str]) -> Vec<u8> {
    cat(&[
        &s(&["PING"]),
        &s(&["REPLCONF", "listening-port", "7002"]),
        &s(&["REPLCONF", "ip-address", "10.9.9.9"]),
        &s(&["REPLCONF", "capa", "eof", "capa", "psync2"]),
        &s(psync),
    ])
}

/// Partial resync: handshake, PSYNC, then keepalives and ACKs in one input.
fn run_partial(cuts: &[usize]) -> EndState {
    let t0 = Instant::now();
    let (mut node, old) = restored(t0, 16 * 1024);
    node.propagate(0, &["SET", "k", "v"]);
    let input = cat(&[
        &handshake(&["PSYNC", &old, "1001"]),
        b"\n",
        &s(&["REPLCONF", "ACK", "1025"]),
        b"\n\n",
        &s(&["REPLCONF", "ACK", "1050", "FACK", "7"]),
        &s(&["REPLCONF", "ACK", "1049"]),
    ]);
    let mut app = App::new();
    feed_split(&mut app, &mut node, t0, &input, cuts);
    let wire = drain(&mut node, 1);
    end_state(&app, &mut node, wire)
}

/// Diskless full sync: the handshake split anywhere, then the transfer, then `\n` and ACKs
/// split anywhere.
fn run_full(cuts1: &[usize], cuts2: &[usize]) -> EndState {
    let t0 = Instant::now();
    let mut node = Node::new(diskless(Duration::ZERO), t0);
    let mut app = App::new();
    feed_split(
        &mut app,
        &mut node,
        t0,
        &handshake(&["PSYNC", "?", "-1"]),
        cuts1,
    );
    let (snap, _, _) = requested(&mut node);
    node.handle_snapshot_started(t0, snap).unwrap();
    node.propagate(0, &["SET", "k", "v"]);
    node.handle_snapshot_chunk(t0, snap, Bytes::from_static(RDB))
        .unwrap();
    node.handle_snapshot_end(t0, snap).unwrap();
    let mut wire = drain(&mut node, 1);
    let after = cat(&[
        b"\n",
        &s(&["REPLCONF", "ACK", "0"]),
        b"\n",
        &s(&["REPLCONF", "ACK", "50"]),
    ]);
    feed_split(&mut app, &mut node, t0, &after, cuts2);
    wire.extend(drain(&mut node, 1));
    end_state(&app, &mut node, wire)
}

proptest! {
    #[test]
    fn replica_input_split_anywhere_gives_the_same_end_state(
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        cuts2 in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = run_partial(&[]);
        prop_assert_eq!(&whole.replies, b"+PONG\r\n+OK\r\n+OK\r\n+OK\r\n");
        prop_assert_eq!(whole.ack, ReplOffset::new(1050));
        prop_assert_eq!(whole.state, ReplicaState::Online);
        prop_assert_eq!(run_partial(&cuts), whole);
        let whole = run_full(&[], &[]);
        prop_assert!(whole.wire.ends_with(&cat(&[SELECT0, SET_KV])));
        prop_assert_eq!(whole.ack, ReplOffset::new(50));
        prop_assert_eq!(run_full(&cuts, &cuts2), whole);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Propagate { db: u32, len: usize },
    Transaction { db: u32, n: usize },
    Poll(usize),
    Ack(usize),
    Newline(usize),
    Disconnect(usize),
    Connect { link: usize, eof: bool },
    Tick(u64),
    SnapStart,
    SnapFinish,
    GetAck,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u32..3, 0usize..3000).prop_map(|(db, len)| Op::Propagate { db, len }),
        1 => (0u32..3, 1usize..4).prop_map(|(db, n)| Op::Transaction { db, n }),
        6 => (0usize..4).prop_map(Op::Poll),
        2 => (0usize..4).prop_map(Op::Ack),
        1 => (0usize..4).prop_map(Op::Newline),
        1 => (0usize..4).prop_map(Op::Disconnect),
        3 => (0usize..4, any::<bool>()).prop_map(|(link, eof)| Op::Connect { link, eof }),
        2 => (0u64..3000).prop_map(Op::Tick),
        2 => Just(Op::SnapStart),
        2 => Just(Op::SnapFinish),
        1 => Just(Op::GetAck),
    ]
}

#[derive(Default)]
struct Rep {
    connected: bool,
    wire: Vec<u8>,
    /// The offset PSYNC asked for on this connection.
    asked: i64,
    /// The next offset it would ask for.
    next: Option<i64>,
}

/// Parses what a replica received on one connection and checks that its stream part equals
/// the recorded stream; returns the offset after the last stream byte (if it got that far).
fn check_wire(wire: &[u8], asked: i64, stream: &[u8], base: i64) -> Option<i64> {
    let mut w = wire;
    let skip_nl = |w: &mut &[u8]| {
        while let [b'\n', rest @ ..] = *w {
            *w = rest;
        }
    };
    let line = |w: &mut &[u8]| -> Option<String> {
        let end = w.windows(2).position(|p| p == b"\r\n")?;
        let l = text(&w[..end]);
        *w = &w[end + 2..];
        Some(l)
    };
    skip_nl(&mut w);
    if w.is_empty() {
        return None;
    }
    let start = if w.starts_with(b"+CONTINUE") {
        line(&mut w).expect("whole line");
        asked
    } else {
        let l = line(&mut w).expect("reply line");
        let off: i64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(l.starts_with("+FULLRESYNC "), "{l:?}");
        skip_nl(&mut w);
        if w.is_empty() {
            return None;
        }
        let hdr = line(&mut w).expect("bulk header");
        if let Some(mark) = hdr.strip_prefix("$EOF:") {
            let body = w.windows(40).position(|p| p == mark.as_bytes())?;
            assert_eq!(&w[..body], RDB);
            w = &w[body + 40..];
        } else {
            let len: usize = hdr[1..].parse().unwrap();
            assert!(w.len() >= len);
            assert_eq!(&w[..len], RDB);
            w = &w[len..];
        }
        off + 1
    };
    let from = usize::try_from(start - base - 1).expect("recorded");
    assert!(from + w.len() <= stream.len(), "more bytes than the stream");
    assert_eq!(
        text(w),
        text(&stream[from..from + w.len()]),
        "stream from {start}"
    );
    Some(start - 1 + w.len() as i64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_offsets_and_streams_consistent(
        diskless_mode in any::<bool>(),
        delay in 0u64..3,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut now = Instant::now();
        let hard = 32 * 1024u64;
        let cfg = NodeConfig {
            backlog_size: 16 * 1024,
            backlog_ttl: Duration::ZERO,
            ping_period: 2 * SECOND,
            repl_timeout: 5 * SECOND,
            diskless_sync: diskless_mode,
            diskless_sync_delay: Duration::from_secs(delay),
            output_buffer_limit: OutputBufferLimit { hard, soft: 0, soft_duration: Duration::ZERO },
            id_seed: 3,
            ..NodeConfig::default()
        };
        let mut node = Node::restored(cfg, now, ReplId::parse(&[b'a'; 40]).unwrap(), ReplOffset::new(0));
        let mut reps: Vec<Rep> = (0..4).map(|_| Rep::default()).collect();
        let mut stream: Vec<u8> = Vec::new(); // every byte of the history since offset 0
        let mut snap: Option<(SnapshotId, SnapshotTarget, bool)> = None;
        let value = vec![b'x'; 3000];
        let mut key = 0u64;
        for op in ops {
            match op {
                Op::Propagate { db, len } => {
                    key += 1;
                    let k = key.to_string();
                    node.propagate(db, &[&b"SET"[..], k.as_bytes(), &value[..len]]);
                }
                Op::Transaction { db, n } => {
                    let cmds: Vec<(u32, Vec<&[u8]>)> =
                        (0..n).map(|_| (db, vec![&b"INCR"[..], b"counter"])).collect();
                    node.propagate_transaction(&cmds);
                }
                Op::Poll(i) => {
                    if reps[i].connected {
                        let wire = drain_file(&mut node, now, i as u64, RDB);
                        reps[i].wire.extend(wire);
                    }
                }
                Op::Ack(i) => {
                    if reps[i].connected {
                        let at = check_wire(&reps[i].wire, reps[i].asked, &stream, 0).unwrap_or(0);
                        ack(&mut node, now, i as u64, at);
                    }
                }
                Op::Newline(i) => node.handle_input(now, LinkId(i as u64), b"\n"),
                Op::Disconnect(i) => {
                    if reps[i].connected {
                        node.handle_disconnect(now, LinkId(i as u64));
                        let r = &mut reps[i];
                        r.next = check_wire(&r.wire, r.asked, &stream, 0).map(|o| o + 1).or(r.next);
                        r.connected = false;
                    }
                }
                Op::Connect { link, eof } => {
                    if !reps[link].connected {
                        let id = node.ids().id.to_string();
                        let r = &mut reps[link];
                        r.wire.clear();
                        r.asked = r.next.unwrap_or(-1);
                        let psync_id = if r.next.is_some() { id.as_str() } else { "?" };
                        let h = psync(&mut node, now, link as u64, eof, psync_id, r.asked);
                        prop_assert_eq!(h, Handled::ReplicaLink);
                        r.connected = true;
                    }
                }
                Op::Tick(ms) => {
                    now += Duration::from_millis(ms);
                    node.handle_timeout(now);
                }
                Op::SnapStart => {
                    if let Some((id, target, false)) = snap {
                        snap = node.handle_snapshot_started(now, id).is_ok().then_some((id, target, true));
                    }
                }
                Op::SnapFinish => {
                    if let Some((id, target, true)) = snap {
                        snap = None;
                        let done = match target {
                            SnapshotTarget::Disk => node.handle_snapshot_file(now, id, RDB.len() as u64),
                            _ => node
                                .handle_snapshot_chunk(now, id, Bytes::from_static(RDB))
                                .and_then(|()| node.handle_snapshot_end(now, id)),
                        };
                        prop_assert!(done.is_ok(), "{:?}", done);
                    }
                }
                Op::GetAck => node.request_acks(),
            }
            while let Some(ev) = node.poll_event() {
                match ev {
                    NodeEvent::SnapshotRequested { snapshot, target, .. } => {
                        prop_assert!(snap.is_none());
                        snap = Some((snapshot, target, false));
                    }
                    NodeEvent::SnapshotAbandoned { snapshot } => {
                        prop_assert_eq!(snap.map(|s| s.0), Some(snapshot));
                        snap = None;
                    }
                    NodeEvent::Close { link, reason } => {
                        let i = link.0 as usize;
                        if reason.flush_first() {
                            let wire = drain_file(&mut node, now, link.0, RDB);
                            reps[i].wire.extend(wire);
                        }
                        node.handle_disconnect(now, link);
                        let r = &mut reps[i];
                        r.next = check_wire(&r.wire, r.asked, &stream, 0).map(|o| o + 1).or(r.next);
                        r.connected = false;
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            // Record the history, flushing pending bytes first.
            node.links_with_output();
            let b = node.backlog().expect("restored nodes keep a backlog (TTL off)");
            prop_assert_eq!(b.end(), node.offset());
            let recorded = stream.len() as i64;
            prop_assert!(b.first().value() <= recorded + 1, "history lost before recording");
            stream.extend(b.range(ReplOffset::new(recorded + 1)).unwrap().flatten());
            prop_assert_eq!(stream.len() as i64, node.offset().value());
            prop_assert!(b.histlen() <= hard + 16 * 1024 + 4 * 1024, "histlen {}", b.histlen());
        }
        for (i, r) in reps.iter_mut().enumerate() {
            if r.connected {
                r.wire.extend(drain_file(&mut node, now, i as u64, RDB));
                let reached = check_wire(&r.wire, r.asked, &stream, 0);
                // The flush above may just have dropped it (its Close is drained next turn).
                let st = node.replica(LinkId(i as u64)).map(|s| s.state());
                if st == Some(ReplicaState::Online) {
                    prop_assert_eq!(reached, Some(node.offset().value()), "online replica {} has everything", i);
                }
            }
        }
    }
}

#[test]
fn a_long_clock_jump_is_one_tick_in_constant_time() {
    let t0 = Instant::now();
    let mut node = online_disk(t0, &[1]);
    // A thousand years between two calls (a suspended machine, a bad clock): the cron must
    // not walk every second in between.
    let later = t0 + Duration::from_secs(1000 * 365 * 24 * 3600);
    let started = Instant::now();
    node.handle_timeout(later);
    assert!(started.elapsed() < Duration::from_secs(1));
    let next = node.poll_timeout().unwrap();
    assert!(next > later && next <= later + SECOND);
    assert_eq!(
        events(&mut node),
        vec![NodeEvent::Close {
            link: LinkId(1),
            reason: CloseReason::Timeout
        }]
    );
}

#[test]
fn replicas_that_load_different_rdb_versions_get_separate_snapshots() {
    // The version bridge: a default of 12 for Redis replicas (which announce nothing), while a
    // Valkey 8.1 replica (REPLCONF version 8.1.8) loads at most 11.
    let t0 = Instant::now();
    let mut node = Node::new(
        NodeConfig {
            snapshot_rdb_version: 12,
            ..disk()
        },
        t0,
    );
    assert!(matches!(
        cmd(&mut node, t0, 1, &["REPLCONF", "version", "8.1.8"]),
        Handled::Reply(_)
    ));
    assert_eq!(
        cmd(&mut node, t0, 1, &["PSYNC", "?", "-1"]),
        Handled::ReplicaLink
    );
    assert_eq!(
        cmd(&mut node, t0, 2, &["PSYNC", "?", "-1"]),
        Handled::ReplicaLink
    );
    let first = events(&mut node);
    let [NodeEvent::SnapshotRequested {
        snapshot,
        rdb_version,
        ..
    }] = first.as_slice()
    else {
        panic!("{first:?}")
    };
    assert_eq!(*rdb_version, 11);
    // The Redis replica does not attach to the Valkey replica's snapshot...
    node.handle_snapshot_started(t0, *snapshot).unwrap();
    assert_eq!(
        node.replica(LinkId(2)).unwrap().state(),
        ReplicaState::WaitBgsaveStart
    );
    node.handle_snapshot_file(t0, *snapshot, 18).unwrap();
    // ...it gets its own, at the configured default.
    let second = events(&mut node);
    assert!(
        matches!(
            second.as_slice(),
            [NodeEvent::SnapshotRequested {
                rdb_version: 12,
                ..
            }]
        ),
        "{second:?}"
    );
}
