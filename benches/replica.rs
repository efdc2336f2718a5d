//! `ReplicaSession` alone parsing a recorded stream of `SET key:NNNNNNN <64-byte value>`
//! commands (plus a `ping` every 1000 commands), fed in 64 KiB reads, events drained.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use respsync::replica::{ReplicaConfig, ReplicaEvent, ReplicaSession};

/// One command in RESP, encoded by the crate.
fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    respsync::resp::encode_command(args, &mut out);
    out.to_vec()
}

fn stream(n: usize) -> Vec<u8> {
    let value = [b'v'; 64];
    let mut out = resp(&[b"SELECT", b"0"]);
    for i in 0..n {
        out.extend(resp(&[b"SET", format!("key:{i:07}").as_bytes(), &value]));
        if i % 1000 == 999 {
            out.extend(resp(&[b"ping"]));
        }
    }
    out
}

/// A session already streaming (full sync of an empty RDB done).
fn streaming_session(now: Instant, batch: bool) -> ReplicaSession {
    let cfg = ReplicaConfig {
        batch_commands: batch,
        ..ReplicaConfig::default()
    };
    let mut s = ReplicaSession::new(cfg, now).expect("default config is valid");
    s.connected(now).expect("fresh session");
    let mut m = format!(
        "+PONG\r\n+OK\r\n+OK\r\n+FULLRESYNC {} 0\r\n$18\r\nREDIS0010",
        "a".repeat(40)
    )
    .into_bytes();
    m.extend_from_slice(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 0]);
    s.handle_input(now, &m).expect("valid script");
    while s.poll_event().is_some() {}
    while s.poll_transmit().is_some() {}
    s
}

fn bench(c: &mut Criterion) {
    let data = stream(100_000);
    let mut g = c.benchmark_group("replica_session");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("set_64b_stream_64k_reads", |b| {
        let now = Instant::now();
        b.iter_batched(
            || streaming_session(now, false),
            |mut s| {
                let mut n = 0usize;
                for chunk in data.chunks(64 * 1024) {
                    s.handle_input(now, chunk).expect("valid stream");
                    while let Some(ev) = s.poll_event() {
                        if let ReplicaEvent::Command(c) = ev {
                            // Touch every argument, as an applying store would.
                            n += c.args().map(<[u8]>::len).sum::<usize>();
                        }
                    }
                }
                assert!(n > 0);
                s
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("set_64b_stream_64k_reads_batched", |b| {
        let now = Instant::now();
        b.iter_batched(
            || streaming_session(now, true),
            |mut s| {
                let mut n = 0usize;
                for chunk in data.chunks(64 * 1024) {
                    s.handle_input(now, chunk).expect("valid stream");
                    while let Some(ev) = s.poll_event() {
                        if let ReplicaEvent::Commands(batch) = ev {
                            for c in batch.iter() {
                                n += c.args().map(<[u8]>::len).sum::<usize>();
                            }
                        }
                    }
                }
                assert!(n > 0);
                s
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// This thread's CPU time in nanoseconds (Linux `schedstat`), to report throughput per CPU
/// second on a machine shared with other work, where wall time understates it.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn cpu_time_report(_c: &mut Criterion) {
    let data = stream(100_000);
    for batch in [false, true] {
        let now = Instant::now();
        let rounds = 30;
        let Some(t0) = thread_cpu_ns() else { return };
        for _ in 0..rounds {
            let mut s = streaming_session(now, batch);
            let mut n = 0usize;
            for chunk in data.chunks(64 * 1024) {
                s.handle_input(now, chunk).expect("valid stream");
                while let Some(ev) = s.poll_event() {
                    match ev {
                        ReplicaEvent::Commands(b) => {
                            for c in b.iter() {
                                n += c.args().map(<[u8]>::len).sum::<usize>();
                            }
                        }
                        ReplicaEvent::Command(c) => n += c.args().map(<[u8]>::len).sum::<usize>(),
                        _ => {}
                    }
                }
            }
            assert!(n > 0);
        }
        let Some(t1) = thread_cpu_ns() else { return };
        let bytes = (data.len() * rounds) as f64;
        let secs = (t1 - t0) as f64 / 1e9;
        println!(
            "cpu-time throughput (batch={batch}): {:.2} GiB/s per CPU second",
            bytes / secs / (1u64 << 30) as f64
        );
    }
}

criterion_group!(benches, bench, cpu_time_report);
criterion_main!(benches);
