//! `Node::propagate` of a typical `SET key:NNNNNNN <64-byte value>` on db 0, followed by
//! draining `poll_transmit` for every replica, with 0, 1 and 8 replicas online. The write is
//! stored once in the backlog; each replica only gets a slice of it, so the cost per write
//! must grow only by that per-replica bookkeeping.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use respsync::node::{Caller, Handled, LinkId, Node, NodeConfig, NodeEvent, Transmit};

const RDB: &[u8] = b"REDIS0010\xff\0\0\0\0\0\0\0\0";

/// A disk-mode master with `n` replicas online after a full sync of an empty RDB.
fn master(n: u64) -> Node {
    let now = Instant::now();
    let cfg = NodeConfig {
        diskless_sync: false,
        ..NodeConfig::default()
    };
    let mut node = Node::new(cfg, now);
    let who = Caller::default();
    for l in 0..n {
        let argv: [&[u8]; 3] = [b"PSYNC", b"?", b"-1"];
        assert_eq!(
            node.handle_command(now, LinkId(l), &who, &argv),
            Handled::ReplicaLink
        );
    }
    if n > 0 {
        let Some(NodeEvent::SnapshotRequested { snapshot, .. }) = node.poll_event() else {
            panic!("no snapshot request");
        };
        node.handle_snapshot_started(now, snapshot).unwrap();
        node.handle_snapshot_file(now, snapshot, RDB.len() as u64)
            .unwrap();
        for l in 0..n {
            while let Some(t) = node.poll_transmit(LinkId(l)) {
                if let Transmit::File { .. } = t {
                    node.handle_file_sent(now, LinkId(l));
                }
            }
        }
    } else {
        // Give the node a backlog, as a master that has had a replica keeps one.
        let argv: [&[u8]; 3] = [b"PSYNC", b"?", b"-1"];
        node.handle_command(now, LinkId(99), &who, &argv);
        node.handle_disconnect(now, LinkId(99));
        while node.poll_event().is_some() {}
    }
    node
}

fn bench(c: &mut Criterion) {
    let value = [b'v'; 64];
    let mut g = c.benchmark_group("master_propagate_set");
    g.throughput(Throughput::Elements(1));
    for n in [0u64, 1, 8] {
        let mut node = master(n);
        assert!(node.backlog().is_some());
        let mut i = 0u64;
        let mut key = *b"key:0000000";
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                i += 1;
                let mut v = i % 10_000_000;
                for d in key[4..].iter_mut().rev() {
                    *d = b'0' + (v % 10) as u8;
                    v /= 10;
                }
                node.propagate(0, &[&b"SET"[..], &key, &value]);
                let mut sent = 0usize;
                for l in 0..n {
                    while let Some(Transmit::Bytes(b)) = node.poll_transmit(LinkId(l)) {
                        sent += b.len();
                    }
                }
                sent
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
