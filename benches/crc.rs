//! CRC-64/Jones (Redis) throughput: this crate's `crc64` (SIMD via crc-fast from 256 bytes) and
//! its slicing-by-16 table implementation `crc64_table`, against the `crc64` crate (slicing by 8)
//! and the `crc-fast` crate (SIMD carry-less multiply; one-shot `checksum` and `Digest`).
//!
//! Run with `cargo bench --bench crc`. Throughput is reported per input size; RDB parsing feeds
//! the CRC whole pushed chunks (typically 4 KiB to 64 KiB), so the 64 KiB and 1 MiB rows are the
//! ones that matter for the "CRC costs under 10 % of parse time" target.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use respsync::rdb::encoding::crc64;

fn data(len: usize) -> Vec<u8> {
    // Deterministic pseudo-random bytes, so every run hashes the same input.
    support::dataset::noise(len, 0x9e37_79b9_7f4a_7c15)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc64_redis");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    for len in [64usize, 256, 4096, 65536, 1 << 20] {
        let input = data(len);
        let expected = crc64::crc64(0, &input);
        assert_eq!(::crc64::crc64(0, &input), expected);
        assert_eq!(
            crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, &input),
            expected
        );
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("respsync", len), &input, |b, i| {
            b.iter(|| crc64::crc64(0, black_box(i)))
        });
        group.bench_with_input(BenchmarkId::new("respsync-table", len), &input, |b, i| {
            b.iter(|| crc64::crc64_table(0, black_box(i)))
        });
        group.bench_with_input(BenchmarkId::new("crc64-crate", len), &input, |b, i| {
            b.iter(|| ::crc64::crc64(0, black_box(i)))
        });
        group.bench_with_input(BenchmarkId::new("crc-fast", len), &input, |b, i| {
            b.iter(|| crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Redis, black_box(i)))
        });
        group.bench_with_input(BenchmarkId::new("crc-fast-digest", len), &input, |b, i| {
            b.iter(|| {
                let mut d = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Redis);
                d.update(black_box(i));
                d.finalize()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
