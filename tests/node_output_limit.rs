//! The replica output-buffer limit counts the replica's unsent stream, not the diskless
//! snapshot bytes queued ahead of it (found by `tests/interop_master.rs`: a real replica whose
//! diskless transfer was larger than the hard limit was dropped mid-transfer, over and over).

use std::time::{Duration, Instant};

use bytes::Bytes;
use respsync::node::{
    Caller, CloseReason, Handled, LinkId, Node, NodeConfig, NodeEvent, OutputBufferLimit,
};

const HARD: u64 = 64 * 1024;

/// A diskless node with a 64 KiB hard limit and one replica that started a full sync.
fn node_with_replica(now: Instant) -> (Node, LinkId, respsync::node::SnapshotId) {
    let mut node = Node::new(
        NodeConfig {
            diskless_sync: true,
            diskless_sync_delay: Duration::ZERO,
            backlog_size: 16 * 1024,
            output_buffer_limit: OutputBufferLimit {
                hard: HARD,
                soft: 0,
                soft_duration: Duration::ZERO,
            },
            ..NodeConfig::default()
        },
        now,
    );
    let link = LinkId(7);
    let who = Caller::default();
    let capa: [&[u8]; 5] = [b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"];
    assert!(matches!(
        node.handle_command(now, link, &who, &capa),
        Handled::Reply(_)
    ));
    let psync: [&[u8]; 3] = [b"PSYNC", b"?", b"-1"];
    assert!(matches!(
        node.handle_command(now, link, &who, &psync),
        Handled::ReplicaLink
    ));
    node.handle_timeout(now);
    let snapshot = loop {
        match node.poll_event() {
            Some(NodeEvent::SnapshotRequested { snapshot, .. }) => break snapshot,
            Some(_) => {}
            None => panic!("no snapshot requested"),
        }
    };
    node.handle_snapshot_started(now, snapshot)
        .expect("snapshot starts");
    (node, link, snapshot)
}

fn closes(node: &mut Node) -> Vec<CloseReason> {
    std::iter::from_fn(|| node.poll_event())
        .filter_map(|e| match e {
            NodeEvent::Close { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

#[test]
fn diskless_snapshot_bytes_do_not_count_against_the_limit() {
    let now = Instant::now();
    let (mut node, link, snapshot) = node_with_replica(now);
    // Ten times the hard limit of snapshot, nothing read by the replica yet...
    for _ in 0..10 {
        node.handle_snapshot_chunk(now, snapshot, Bytes::from(vec![0u8; HARD as usize]))
            .expect("chunk");
    }
    // ...and writes during the transfer, under the limit (more than the node's 16 KiB
    // flush unit, so that they reach the backlog, where the limits are applied).
    let value = vec![b'v'; 1024];
    for _ in 0..24 {
        node.propagate(0, &[&b"SET"[..], b"k", &value]);
    }
    assert_eq!(closes(&mut node), vec![]);
    assert_eq!(node.stats().output_buffer_drops, 0);
    assert!(node.replica(link).is_some());
}

#[test]
fn the_stream_written_during_a_transfer_counts() {
    let now = Instant::now();
    let (mut node, link, _snapshot) = node_with_replica(now);
    let value = vec![b'v'; 1024];
    for _ in 0..(HARD / 1024 + 8) {
        node.propagate(0, &[&b"SET"[..], b"k", &value]);
    }
    let reasons = closes(&mut node);
    assert!(
        matches!(reasons[..], [CloseReason::OutputBufferHard { pending, limit: HARD }] if pending > HARD),
        "{reasons:?}"
    );
    assert_eq!(node.stats().output_buffer_drops, 1);
    assert!(node.replica(link).is_none());
}

/// The limit is reached at exactly `hard` unsent bytes (Redis compares with `>=`).
#[test]
fn the_hard_limit_is_reached_at_exactly_hard_bytes() {
    for (value_len, dropped) in [(65_482, false), (65_483, true)] {
        let now = Instant::now();
        let (mut node, link, _snapshot) = node_with_replica(now);
        // The stream's first write: `SELECT 0` (23 bytes), then
        // `*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$65483\r\n` + value + `\r\n`: 65,536 bytes in all.
        let value = vec![b'v'; value_len];
        node.propagate(0, &[&b"SET"[..], b"k", &value]);
        let reasons = closes(&mut node);
        if dropped {
            assert!(
                matches!(
                    reasons[..],
                    [CloseReason::OutputBufferHard {
                        pending: HARD,
                        limit: HARD
                    }]
                ),
                "{reasons:?}"
            );
            assert!(node.replica(link).is_none());
        } else {
            assert_eq!(reasons, vec![], "one byte under the limit");
            assert!(node.replica(link).is_some());
        }
    }
}
