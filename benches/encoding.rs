//! Throughput of the low-level encodings: container validation + iteration, LZF both ways,
//! and the object encoder on `DEBUG POPULATE`-style values (the RDB writer's hot path).
//!
//! Run with `cargo bench --bench encoding`.

use std::time::Duration;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use respsync::rdb::encoding::listpack::{Listpack, ListpackBuilder};
use respsync::rdb::encoding::lzf;
use respsync::rdb::encoding::object::ObjectEncoder;
use respsync::rdb::encoding::ziplist::{Ziplist, ZiplistBuilder};
use respsync::rdb::{HashEntry, Value};

/// What `DEBUG POPULATE n key 100` stores: "value:N" padded with zero bytes to 100 bytes.
fn populate_value(i: usize) -> Vec<u8> {
    let mut v = format!("value:{i}").into_bytes();
    v.resize(100, 0);
    v
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("encoding");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);

    // A 128-field hash as a listpack / ziplist: mixed ints and short strings.
    let mut lpb = ListpackBuilder::new();
    let mut zlb = ZiplistBuilder::new();
    for i in 0..128 {
        let f = format!("field:{i}");
        let v = if i % 2 == 0 {
            i.to_string()
        } else {
            format!("some value {i}")
        };
        lpb.push(f.as_bytes());
        lpb.push(v.as_bytes());
        zlb.push(f.as_bytes());
        zlb.push(v.as_bytes());
    }
    let lp = lpb.finish();
    let zl = zlb.finish();
    g.throughput(Throughput::Bytes(lp.len() as u64));
    g.bench_function("listpack_parse_iterate", |b| {
        b.iter(|| {
            let p = Listpack::parse(black_box(&lp)).unwrap();
            p.iter().map(|v| v.len()).sum::<usize>()
        })
    });
    g.throughput(Throughput::Bytes(zl.len() as u64));
    g.bench_function("ziplist_parse_iterate", |b| {
        b.iter(|| {
            let p = Ziplist::parse(black_box(&zl)).unwrap();
            p.iter().map(|v| v.len()).sum::<usize>()
        })
    });

    let text: Vec<u8> = (0..64 * 1024)
        .map(|i: usize| {
            b"the quick brown fox jumps over the lazy dog "[i % 44] ^ ((i / 997) as u8 & 1)
        })
        .collect();
    let mut packed = Vec::new();
    assert!(lzf::compress(&text, &mut packed));
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("lzf_compress_64k", |b| {
        let mut c = lzf::Compressor::new();
        let mut out = Vec::with_capacity(text.len());
        b.iter(|| {
            out.clear();
            c.compress(black_box(&text), &mut out)
        })
    });
    g.bench_function("lzf_decompress_64k", |b| {
        let mut out = Vec::with_capacity(text.len());
        b.iter(|| {
            out.clear();
            lzf::decompress(black_box(&packed), text.len(), &mut out).unwrap()
        })
    });

    // 10 000 populate-style string keys, LZF on (Redis's default).
    let values: Vec<(Vec<u8>, Value)> = (0..10_000)
        .map(|i| {
            (
                format!("key:{i}").into_bytes(),
                Value::String(Bytes::from(populate_value(i))),
            )
        })
        .collect();
    g.throughput(Throughput::Elements(values.len() as u64));
    g.bench_function("encode_10k_populate_strings", |b| {
        let mut enc = ObjectEncoder::new(10).unwrap();
        let mut out = Vec::with_capacity(2 << 20);
        b.iter(|| {
            out.clear();
            for (k, v) in &values {
                enc.write_object(Some(k), v, &mut out).unwrap();
            }
            out.len()
        })
    });

    // 100 hashes of 100 fields (listpack) and 10 lists of 1000 elements (quicklist).
    let hashes: Vec<Value> = (0..100)
        .map(|h| {
            Value::Hash(
                (0..100)
                    .map(|i| HashEntry {
                        field: Bytes::from(format!("f{i}")),
                        value: Bytes::from(format!("v{h}:{i}")),
                        expire_ms: None,
                    })
                    .collect(),
            )
        })
        .collect();
    g.throughput(Throughput::Elements(100 * 100));
    g.bench_function("encode_100_hashes_x100", |b| {
        let mut enc = ObjectEncoder::new(10).unwrap();
        let mut out = Vec::new();
        b.iter(|| {
            out.clear();
            for v in &hashes {
                enc.write_object(Some(b"h"), v, &mut out).unwrap();
            }
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
