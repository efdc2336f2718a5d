//! Arbitrary replica bytes and timings against a `Node` with a backlog and a few links: it
//! must never panic, keep `offset == backlog end`, and keep the backlog within its limits
//! whatever the replicas send or fail to read.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use respsync::ids::{ReplId, ReplOffset};
use respsync::node::{
    Caller, LinkId, Node, NodeConfig, NodeEvent, OutputBufferLimit, SnapshotTarget, Transmit,
};

const RDB: &[u8] = b"REDIS0010\xff\0\0\0\0\0\0\0\0";
const BACKLOG: u64 = 16 * 1024;
const HARD: u64 = 48 * 1024;
/// Propagated bytes are flushed into the backlog in chunks of at most this much (16 KiB plus
/// one command of this target).
const CHUNK: u64 = 16 * 1024 + 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let cfg = NodeConfig {
        backlog_size: BACKLOG,
        diskless_sync: flags & 1 != 0,
        diskless_sync_delay: Duration::from_secs(u64::from(flags >> 1 & 3)),
        diskless_sync_max_replicas: usize::from(flags >> 3 & 3),
        ping_period: Duration::from_secs(2),
        repl_timeout: Duration::from_secs(5),
        backlog_ttl: Duration::from_secs(u64::from(flags >> 5 & 1) * 20),
        output_buffer_limit: OutputBufferLimit {
            hard: HARD,
            soft: 24 * 1024,
            soft_duration: Duration::from_secs(3),
        },
        ..NodeConfig::default()
    };
    let mut node = Node::restored(
        cfg,
        now,
        ReplId::parse(&[b'a'; 40]).unwrap(),
        ReplOffset::new(100),
    );
    let value = [b'v'; 3000];
    let mut snap: Option<(respsync::node::SnapshotId, SnapshotTarget, bool)> = None;
    let caller = Caller {
        authenticated: flags & 0x40 == 0,
        in_multi: false,
        peer_ip: Some("127.0.0.1".into()),
    };
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let link = LinkId(u64::from(op >> 4 & 3));
        match op & 15 {
            0..=2 => {
                // Raw bytes from a replica link.
                let n = usize::from(op >> 6).max(1) * 8;
                let (chunk, tail) = rest.split_at(n.min(rest.len()));
                rest = tail;
                node.handle_input(now, link, chunk);
            }
            3 | 4 => {
                // A command from the application's dispatcher, words split on spaces.
                let n = rest.first().map_or(0, |&b| usize::from(b & 63));
                let (line, tail) = rest.split_at((n + 1).min(rest.len()));
                rest = tail;
                let argv: Vec<&[u8]> = line.get(1..).unwrap_or(&[]).split(|b| *b == b' ').collect();
                let _ = node.handle_command(now, link, &caller, &argv);
            }
            5 => {
                now += Duration::from_millis(u64::from(op >> 4) * 200);
                node.handle_timeout(now);
            }
            6 => {
                let len = usize::from(op >> 4) * 200;
                node.propagate(u32::from(op >> 6), &[&b"SET"[..], b"key", &value[..len]]);
            }
            7 => {
                while let Some(t) = node.poll_transmit(link) {
                    if let Transmit::File { .. } = t {
                        node.handle_file_sent(now, link);
                    }
                }
            }
            8 => {
                let id = node.ids().id.to_string();
                let off = (node.offset().value() + 1 - i64::from(op >> 4)).to_string();
                let argv: [&[u8]; 3] = [b"PSYNC", id.as_bytes(), off.as_bytes()];
                let _ = node.handle_command(now, link, &Caller::default(), &argv);
            }
            9 => node.handle_disconnect(now, link),
            10 => {
                if let Some((id, target, started)) = snap {
                    if !started {
                        snap = node
                            .handle_snapshot_started(now, id)
                            .ok()
                            .map(|_| (id, target, true));
                    } else if op & 0x10 != 0 {
                        snap = None;
                        node.handle_snapshot_failed(now, id);
                    } else {
                        snap = None;
                        let _ = match target {
                            SnapshotTarget::Disk => {
                                node.handle_snapshot_file(now, id, RDB.len() as u64)
                            }
                            _ => node
                                .handle_snapshot_chunk(now, id, Bytes::from_static(RDB))
                                .and_then(|()| node.handle_snapshot_end(now, id)),
                        };
                    }
                }
            }
            11 => node.request_acks(),
            12 => node.propagate_transaction(0, &[[&b"INCR"[..], b"n"], [&b"INCR"[..], b"m"]]),
            13 => {
                let _ = node.info_replication_master(now);
                let _ = node.role_reply(now);
            }
            _ => {}
        }
        while let Some(ev) = node.poll_event() {
            match ev {
                NodeEvent::SnapshotRequested {
                    snapshot, target, ..
                } => {
                    assert!(snap.is_none(), "one snapshot at a time");
                    snap = Some((snapshot, target, false));
                }
                NodeEvent::SnapshotAbandoned { .. } => snap = None,
                NodeEvent::Close { link, .. } => node.handle_disconnect(now, link),
                _ => {}
            }
        }
        let _ = node.links_with_output(); // flushes pending bytes
        if let Some(b) = node.backlog() {
            assert_eq!(b.end(), node.offset());
            assert!(
                b.histlen() <= BACKLOG.max(HARD) + CHUNK,
                "histlen {}",
                b.histlen()
            );
        }
    }
});
