//! Regression tests for the bugs the deterministic simulator (`tests/simulation.rs`) found in
//! the crate, each reduced to the calls that show it. The seed named is the one that found it
//! while the simulator was being written (its scenario has grown since: the mutation table in
//! `tests/simulation.rs` gives the seeds that catch each fix reverted today).

use std::time::{Duration, Instant};

use bytes::Bytes;
use respsync::ids::{ReplId, ReplOffset};
use respsync::node::{
    Caller, CloseReason, Handled, LinkId, Node, NodeConfig, NodeEvent, Transmit, WaitOutcome,
};
use respsync::replica::{ReplicaConfig, ReplicaSession};

fn disk_node(now: Instant) -> Node {
    Node::new(
        NodeConfig {
            diskless_sync: false,
            ..NodeConfig::default()
        },
        now,
    )
}

fn psync(node: &mut Node, now: Instant, link: LinkId, argv: &[&[u8]]) -> Handled {
    node.handle_command(now, link, &Caller::default(), argv)
}

/// Everything the node has for `link` now (a file counts as its length in `F` bytes).
fn drain(node: &mut Node, now: Instant, link: LinkId) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(t) = node.poll_transmit(link) {
        match t {
            Transmit::Bytes(b) => out.extend_from_slice(&b),
            Transmit::File { len, .. } => {
                out.extend(std::iter::repeat_n(b'F', len as usize));
                node.handle_file_sent(now, link);
            }
        }
    }
    out
}

fn events(node: &mut Node) -> Vec<NodeEvent> {
    std::iter::from_fn(|| node.poll_event()).collect()
}

/// Seed 0: a replica serving a full sync to its own sub-replica recorded the database of its
/// own last full sync as `repl-stream-db`, not the one its master's stream was in: the
/// sub-replica applied writes to the wrong database until the next `SELECT`. The node now
/// takes the stream's database from the application (`set_upstream_db`) and keeps it across
/// the snapshots it serves.
#[test]
fn replica_snapshot_records_the_upstream_stream_db() {
    let now = Instant::now();
    let mut node = disk_node(now);
    node.follow();
    let id = ReplId::parse(&[b'a'; 40]).unwrap();
    node.handle_upstream_full_sync(id, ReplOffset::new(100), 0);
    node.set_upstream(true, true);
    node.handle_upstream_stream(Bytes::from_static(b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"));
    node.set_upstream_db(3);
    for link in [LinkId(1), LinkId(2)] {
        let h = psync(&mut node, now, link, &[b"PSYNC", b"?", b"-1"]);
        assert_eq!(h, Handled::ReplicaLink);
        let Some(NodeEvent::SnapshotRequested { snapshot, .. }) = node.poll_event() else {
            panic!("no snapshot requested")
        };
        // Twice: a replica's database is not forgotten after a snapshot (only a master
        // re-selects before its next write).
        let start = node.handle_snapshot_started(now, snapshot).unwrap();
        assert_eq!(start.stream_db, 3);
        node.handle_snapshot_file(now, snapshot, 9).unwrap();
    }
}

/// Seed 8: `REPLICAOF` while a snapshot was being sent put its replicas back to waiting, and
/// the next snapshot sent them a second `+FULLRESYNC` in the middle of the first transfer
/// (the replica failed with "bad protocol from master"). They are now closed.
#[test]
fn follow_closes_replicas_receiving_a_snapshot() {
    let now = Instant::now();
    let mut node = disk_node(now);
    let link = LinkId(1);
    psync(&mut node, now, link, &[b"REPLCONF", b"capa", b"psync2"]);
    assert_eq!(
        psync(&mut node, now, link, &[b"PSYNC", b"?", b"-1"]),
        Handled::ReplicaLink
    );
    let Some(NodeEvent::SnapshotRequested { snapshot, .. }) = node.poll_event() else {
        panic!("no snapshot requested")
    };
    node.handle_snapshot_started(now, snapshot).unwrap();
    let sent = drain(&mut node, now, link);
    assert!(sent.starts_with(b"+FULLRESYNC "));
    node.follow();
    let ev = events(&mut node);
    assert!(
        ev.contains(&NodeEvent::SnapshotAbandoned { snapshot }),
        "{ev:?}"
    );
    assert!(
        ev.contains(&NodeEvent::Close {
            link,
            reason: CloseReason::SnapshotFailed
        }),
        "{ev:?}"
    );
    assert!(node.replica(link).is_none());
    // Once the node's own link is up, nothing more goes to the closed replica.
    node.set_upstream(true, true);
    node.handle_timeout(now + Duration::from_secs(2));
    assert!(drain(&mut node, now, link).is_empty());
}

/// Seed 543: inside an open `MULTI` from the master, `ReplicaSession::db` gave the database
/// of the last `SELECT` received, while `offset` is the one before `MULTI`; a new session
/// resuming from that pair (`REPLICAOF` another master) applied the rest of the stream to the
/// wrong database. Both now describe the same point.
#[test]
fn session_db_is_the_applied_offsets_db_inside_multi() {
    let now = Instant::now();
    let mut s = ReplicaSession::new(ReplicaConfig::default(), now).unwrap();
    s.connected(now).unwrap();
    let id = "a".repeat(40);
    let mut input =
        format!("+PONG\r\n+OK\r\n+OK\r\n+FULLRESYNC {id} 1000\r\n$18\r\nREDIS0010").into_bytes();
    input.extend_from_slice(&[0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
    s.handle_input(now, &input).unwrap();
    let select1 = b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n";
    s.handle_input(now, select1).unwrap();
    let applied = s.offset().unwrap();
    assert_eq!(s.db(), Some(1));
    s.handle_input(
        now,
        b"*1\r\n$5\r\nMULTI\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
    )
    .unwrap();
    assert_eq!(s.offset(), Some(applied));
    assert_eq!(
        s.db(),
        Some(1),
        "the SELECT inside MULTI is not applied yet"
    );
    s.handle_input(now, b"*1\r\n$4\r\nEXEC\r\n").unwrap();
    assert_eq!(s.db(), Some(2));
    s.disconnected(now);
    assert_eq!(s.cached_master().unwrap().db, 2);
}

/// Seed 1305: a master blocked a client in `WAIT`, followed another master (a full sync gave
/// it a new history) and was promoted again; the old `WAIT` was then answered with replicas
/// counted against the new history's offsets. `follow` now unblocks blocked `WAIT`s at once
/// with Redis's `-UNBLOCKED` error.
#[test]
fn follow_unblocks_blocked_waits() {
    let now = Instant::now();
    let mut node = disk_node(now);
    let link = LinkId(1);
    psync(&mut node, now, link, &[b"PSYNC", b"?", b"-1"]);
    let Some(NodeEvent::SnapshotRequested { snapshot, .. }) = node.poll_event() else {
        panic!("no snapshot requested")
    };
    node.handle_snapshot_started(now, snapshot).unwrap();
    node.handle_snapshot_file(now, snapshot, 9).unwrap();
    drain(&mut node, now, link);
    node.propagate(0, &[&b"SET"[..], b"k", b"v"]);
    let at = node.offset();
    let Ok(WaitOutcome::Blocked(wait)) = node.handle_wait(now, at, 1, None, true) else {
        panic!("WAIT did not block")
    };
    node.follow();
    assert_eq!(events(&mut node), vec![NodeEvent::WaitUnblocked { wait }]);
    // A later ACK (of another history) answers nothing.
    node.handle_input(
        now,
        link,
        b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$6\r\n999999\r\n",
    );
    assert!(events(&mut node).is_empty());
}
