//! RESP decode throughput: respsync against redis-protocol 6 and resp-rs 0.3 on the same bytes.
//!
//! Inputs:
//! * `set_stream`: a replication-style stream of 1M `SET key:NNNNNNN <64-byte value>` commands;
//! * `mixed_stream`: MULTI/EXEC blocks with HSET of 100 fields, SET, INCR, and a 1 MB bulk
//!   SET every 50 blocks.
//!
//! Each decoder gets the whole stream in one buffer (built, and later freed, outside the
//! timing) and decodes every frame, dropping each as it goes; `mixed_stream_16k_reads` feeds the mixed stream in 16 KiB reads as a socket
//! would, where decoders that rescan or copy pending data pay for it. Throughput is reported in bytes (MB/s); frames/s = frames / time (the frame
//! count is printed at start-up). Run briefly with:
//! `cargo bench --bench resp -- --warm-up-time 1 --measurement-time 5`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use respsync::resp::{encode_command, Decoder, Limits};

fn set_stream(n: usize) -> (Bytes, usize) {
    let value = [b'v'; 64];
    let mut out = BytesMut::with_capacity(n * 100);
    for i in 0..n {
        let key = format!("key:{i:07}");
        encode_command(&[&b"SET"[..], key.as_bytes(), &value[..]], &mut out);
    }
    (out.freeze(), n)
}

fn mixed_stream(blocks: usize) -> (Bytes, usize) {
    let mut out = BytesMut::new();
    let mut frames = 0;
    let big = vec![b'x'; 1 << 20];
    for b in 0..blocks {
        encode_command(&["MULTI"], &mut out);
        let key = format!("h:{b}");
        let mut hset: Vec<Vec<u8>> = vec![b"HSET".to_vec(), key.into_bytes()];
        for f in 0..100 {
            hset.push(format!("field:{f}").into_bytes());
            hset.push(format!("value-{b}-{f}").into_bytes());
        }
        encode_command(&hset, &mut out);
        encode_command(&["SET", &format!("k:{b}"), "some value"], &mut out);
        encode_command(&["INCR", "counter"], &mut out);
        encode_command(&["EXEC"], &mut out);
        frames += 5;
        if b % 50 == 0 {
            encode_command(
                &[&b"SET"[..], format!("big:{b}").as_bytes(), &big[..]],
                &mut out,
            );
            frames += 1;
        }
    }
    (out.freeze(), frames)
}

fn bench_input(c: &mut Criterion, name: &str, wire: &Bytes, frames: usize) {
    eprintln!("{name}: {} bytes, {frames} frames", wire.len());
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.throughput(Throughput::Bytes(wire.len() as u64));
    // Each iteration gets its own copy of the input, made outside the timing. A second handle
    // on the same allocation is kept and returned by the routine, so for every decoder the
    // input buffer is also freed outside the timing (criterion drops routine outputs after
    // the clock stops): the timed part is decoding and dropping the frames, nothing else.
    let fresh = || {
        let mut buf = BytesMut::from(&wire[..]);
        let keep = buf.split_off(buf.len());
        (buf, keep)
    };

    g.bench_function("respsync/decode_command", |b| {
        b.iter_batched(
            fresh,
            |(mut buf, keep)| {
                let mut dec = Decoder::new(Limits::default());
                let mut n = 0;
                while let Some(cmd) = dec.decode_command(&mut buf).unwrap() {
                    black_box(&cmd.argv);
                    n += 1;
                }
                assert_eq!(n, frames);
                (buf, keep)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("respsync/decode", |b| {
        b.iter_batched(
            fresh,
            |(mut buf, keep)| {
                let mut dec = Decoder::new(Limits::default());
                let mut n = 0;
                while let Some(d) = dec.decode(&mut buf).unwrap() {
                    black_box(&d.frame);
                    n += 1;
                }
                assert_eq!(n, frames);
                (buf, keep)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("redis-protocol/resp2_decode_bytes_mut", |b| {
        b.iter_batched(
            fresh,
            |(mut buf, keep)| {
                let mut n = 0;
                while let Some((f, _, _)) =
                    redis_protocol::resp2::decode::decode_bytes_mut(&mut buf).unwrap()
                {
                    black_box(&f);
                    n += 1;
                }
                assert_eq!(n, frames);
                (buf, keep)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("resp-rs/resp2_parse_frame", |b| {
        b.iter_batched(
            || {
                let input = Bytes::copy_from_slice(wire);
                (input.clone(), input)
            },
            |(mut rest, keep)| {
                let mut n = 0;
                while !rest.is_empty() {
                    let (f, r) = resp_rs::resp2::parse_frame(rest).unwrap();
                    black_box(&f);
                    rest = r;
                    n += 1;
                }
                assert_eq!(n, frames);
                keep
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// The same stream arriving in 16 KiB reads, as from a socket: each decoder keeps its own
/// buffer and is drained after every read.
fn bench_chunked(c: &mut Criterion, name: &str, wire: &Bytes, frames: usize) {
    const READ: usize = 16 * 1024;
    let mut g = c.benchmark_group(format!("{name}_16k_reads"));
    g.sample_size(10);
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("respsync/decode_command", |b| {
        b.iter(|| {
            let mut dec = Decoder::new(Limits::default());
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut n = 0;
            for chunk in wire.chunks(READ) {
                buf.extend_from_slice(chunk);
                while let Some(cmd) = dec.decode_command(&mut buf).unwrap() {
                    black_box(&cmd.argv);
                    n += 1;
                }
            }
            assert_eq!(n, frames);
        })
    });
    g.bench_function("respsync/decode", |b| {
        b.iter(|| {
            let mut dec = Decoder::new(Limits::default());
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut n = 0;
            for chunk in wire.chunks(READ) {
                buf.extend_from_slice(chunk);
                while let Some(d) = dec.decode(&mut buf).unwrap() {
                    black_box(&d.frame);
                    n += 1;
                }
            }
            assert_eq!(n, frames);
        })
    });
    g.bench_function("redis-protocol/resp2_decode_bytes_mut", |b| {
        b.iter(|| {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut n = 0;
            for chunk in wire.chunks(READ) {
                buf.extend_from_slice(chunk);
                while let Some((f, _, _)) =
                    redis_protocol::resp2::decode::decode_bytes_mut(&mut buf).unwrap()
                {
                    black_box(&f);
                    n += 1;
                }
            }
            assert_eq!(n, frames);
        })
    });
    g.bench_function("resp-rs/resp2_Parser", |b| {
        b.iter(|| {
            let mut parser = resp_rs::resp2::Parser::new();
            let mut n = 0;
            for chunk in wire.chunks(READ) {
                parser.feed(wire.slice_ref(chunk));
                while let Some(f) = parser.next_frame().unwrap() {
                    black_box(&f);
                    n += 1;
                }
            }
            assert_eq!(n, frames);
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let (wire, frames) = set_stream(1_000_000);
    bench_input(c, "set_stream", &wire, frames);
    drop(wire);
    let (wire, frames) = mixed_stream(1000);
    bench_input(c, "mixed_stream", &wire, frames);
    bench_chunked(c, "mixed_stream", &wire, frames);
}

criterion_group!(resp, benches);
criterion_main!(resp);
