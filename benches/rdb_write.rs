//! Write throughput of `rdb::Writer` on the `DEBUG POPULATE 3000000 key 100` dataset (3M
//! string keys `key:N`, values "value:N" zero-padded to 100 bytes), chunks drained and
//! discarded as a diskless transfer would send them. Compare with a real `redis-server` 7.0
//! `SAVE` of the same data (see BENCHMARKS.md for how it was measured).
//!
//! Run with `cargo bench --bench rdb_write`; `RESPSYNC_WRITE_KEYS` changes the key count.

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use respsync::rdb::{KeyOptions, Value, Writer, WriterConfig};

fn keys() -> usize {
    std::env::var("RESPSYNC_WRITE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000_000)
}

/// Writes the dataset; returns the file size.
fn write_populate(n: usize) -> u64 {
    let mut w = Writer::new(WriterConfig::default()).expect("version 10 is valid");
    w.select_db(0, n as u64, 0).expect("open writer");
    let mut key = Vec::with_capacity(32);
    let mut value = Vec::with_capacity(100);
    let mut sink = 0u64;
    for i in 0..n {
        key.clear();
        key.extend_from_slice(format!("key:{i}").as_bytes());
        value.clear();
        value.extend_from_slice(format!("value:{i}").as_bytes());
        value.resize(100, 0);
        let v = Value::String(Bytes::copy_from_slice(&value));
        w.key(&key, &v, KeyOptions::default())
            .expect("strings encode");
        if w.buffered() >= 256 << 10 {
            while let Some(chunk) = w.poll_chunk() {
                sink += chunk.len() as u64;
            }
        }
    }
    while let Some(chunk) = w.poll_chunk() {
        sink += chunk.len() as u64;
    }
    sink + w.finish().expect("finish once").len() as u64
}

fn bench(c: &mut Criterion) {
    let n = keys();
    let size = write_populate(n);
    eprintln!("rdb_write: {n} keys -> {size} bytes");
    let mut g = c.benchmark_group("rdb_write");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Bytes(size));
    g.bench_function(format!("populate_{n}_x100"), |b| {
        b.iter(|| write_populate(n))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
