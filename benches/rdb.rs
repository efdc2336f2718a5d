//! RDB parse throughput: respsync's push parser vs the `rdb` crate 0.4 on the same bytes.
//!
//! Input: a dump made by a real `redis-server` with `DEBUG POPULATE 3000000 key 100` plus
//! collections of every type (small and large encodings), generated on first use and cached
//! under `target/bench-data/`. Also measured: the CRC-64 alone over the same bytes.
//!
//! `respsync_visitor` is the zero-allocation API (`Parser::feed_with` with a visitor that
//! borrows); `respsync` is the owned-event API (`push` + `poll_event`); `respsync_bytes` is
//! the owned-event API on input pushed in place (`push_bytes` + `poll_event`). These decode every
//! key and value and check the CRC, as the `rdb` crate does with its `Nil` formatter. The
//! `_lazy` rows turn on `ParserConfig::lazy_values` (compressed strings and containers are
//! delivered undecoded, as `rdb-dump --stats` reads them); `plain_read` sums every byte of the
//! file in memory, the floor any parser that looks at every byte pays.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use respsync::rdb::encoding::crc64::crc64;
use respsync::rdb::{KeyRef, Parser, ParserConfig, RdbEvent, Visitor};

#[path = "../tests/support/mod.rs"]
mod support;
use support::Proc;

const CHUNK: usize = 256 << 10;

/// Collections of every type, built server-side by a Lua script.
const COLLECTIONS_LUA: &str = r#"
for i = 1, 2000 do
  for j = 1, 50 do
    redis.call('RPUSH', 'list:' .. i, 'element-' .. j)
    redis.call('HSET', 'hash:' .. i, 'field-' .. j, 'value-' .. j)
    redis.call('SADD', 'set:' .. i, 'member-' .. j)
    redis.call('SADD', 'intset:' .. i, j * 3)
    redis.call('ZADD', 'zset:' .. i, j / 7, 'member-' .. j)
  end
end
for i = 1, 20 do
  for j = 1, 5000 do
    redis.call('RPUSH', 'biglist:' .. i, 'element-' .. j)
    redis.call('HSET', 'bighash:' .. i, 'field-' .. j, 'value-' .. j)
    redis.call('SADD', 'bigset:' .. i, 'member-' .. j)
    redis.call('ZADD', 'bigzset:' .. i, j / 7, 'member-' .. j)
  end
end
for i = 1, 200 do
  for j = 1, 100 do
    redis.call('XADD', 'stream:' .. i, '*', 'field', 'value-' .. j, 'n', j)
  end
end
return 1
"#;

fn generate(dest: &Path) {
    let server = Proc::redis(&["--enable-debug-command", "local"]);
    let mut c = server.conn();
    c.run("DEBUG POPULATE 3000000 key 100");
    c.must(&[b"EVAL", COLLECTIONS_LUA.as_bytes(), b"0"]);
    c.run("SAVE");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(server.dir.0.join("dump.rdb"), dest).unwrap();
}

/// The cached input file (generated on first use).
pub fn input_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target.join("bench-data/populate-3m-collections.rdb");
    if !path.exists() {
        generate(&path);
    }
    path
}

fn respsync_parse(data: &[u8]) -> u64 {
    let mut parser = Parser::new(ParserConfig::default());
    let mut events = 0u64;
    for piece in data.chunks(CHUNK) {
        parser.push(piece);
        while let Some(_ev) = parser.poll_event().unwrap() {
            events += 1;
        }
    }
    parser.finish();
    assert!(parser.poll_event().unwrap().is_none() && parser.is_done());
    events
}

/// The owned-event API on `Bytes` pushed in place (`push_bytes` + `poll_event`).
fn respsync_parse_bytes(data: &bytes::Bytes, config: ParserConfig) -> u64 {
    let mut parser = Parser::new(config);
    let mut events = 0u64;
    let mut pos = 0;
    while pos < data.len() {
        let end = (pos + CHUNK).min(data.len());
        parser.push_bytes(data.slice(pos..end));
        pos = end;
        while let Some(_ev) = parser.poll_event().unwrap() {
            events += 1;
        }
    }
    parser.finish();
    assert!(parser.poll_event().unwrap().is_none() && parser.is_done());
    events
}

/// Counts what it is given and keeps nothing: the parser still decodes every key and value
/// (LZF, containers, streams) and checks the CRC.
#[derive(Default)]
struct Nil(u64);

impl Visitor for Nil {
    fn event(&mut self, _event: RdbEvent) {
        self.0 += 1;
    }
    fn key_start(&mut self, _key: KeyRef<'_>) {
        self.0 += 1;
    }
    fn string_chunk(&mut self, _data: &[u8]) {
        self.0 += 1;
    }
    fn element(&mut self, _element: &[u8]) {
        self.0 += 1;
    }
    fn zset_member(&mut self, _member: &[u8], _score: f64) {
        self.0 += 1;
    }
    fn hash_field(&mut self, _field: &[u8], _value: &[u8], _expire_ms: Option<i64>) {
        self.0 += 1;
    }
    fn raw_value(&mut self, _value: respsync::rdb::RawRef<'_>) {
        self.0 += 1;
    }
    fn key_end(&mut self) {
        self.0 += 1;
    }
}

/// The zero-allocation API: `feed_with` and a visitor that borrows.
fn respsync_visit(data: &[u8], config: ParserConfig) -> u64 {
    let mut parser = Parser::new(config);
    let mut nil = Nil::default();
    for piece in data.chunks(CHUNK) {
        parser.feed_with(piece, &mut nil).unwrap();
    }
    parser.finish();
    parser.parse_with(&mut nil).unwrap();
    assert!(parser.is_done());
    nil.0
}

fn rdb_crate_parse(data: &[u8]) {
    let reader = std::io::BufReader::new(Cursor::new(data));
    rdb::parse(
        reader,
        rdb::formatter::Nil::new(None),
        rdb::filter::Simple::new(),
    )
    .unwrap();
}

fn bench(c: &mut Criterion) {
    let data = std::fs::read(input_path()).unwrap();
    let mut g = c.benchmark_group("rdb_parse");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    // Both APIs report the same number of events/callbacks.
    let eager = ParserConfig::default;
    let lazy = || {
        let mut c = ParserConfig::default();
        c.lazy_values(true);
        c
    };
    assert_eq!(respsync_parse(&data), respsync_visit(&data, eager()));
    let shared = bytes::Bytes::from(data.clone());
    assert_eq!(
        respsync_parse_bytes(&shared, eager()),
        respsync_visit(&data, eager())
    );
    assert_eq!(
        respsync_parse_bytes(&shared, lazy()),
        respsync_visit(&data, lazy())
    );
    g.bench_function("respsync_visitor", |b| {
        b.iter(|| respsync_visit(&data, eager()))
    });
    // Values not decoded (what `rdb-dump --stats` does): the library's fastest path.
    g.bench_function("respsync_visitor_lazy", |b| {
        b.iter(|| respsync_visit(&data, lazy()))
    });
    g.bench_function("respsync", |b| b.iter(|| respsync_parse(&data)));
    g.bench_function("respsync_bytes", |b| {
        b.iter(|| respsync_parse_bytes(&shared, eager()))
    });
    g.bench_function("respsync_bytes_lazy", |b| {
        b.iter(|| respsync_parse_bytes(&shared, lazy()))
    });
    // The floor: touching every byte once (a sum over the file in memory).
    g.bench_function("plain_read", |b| {
        b.iter(|| {
            data.chunks(CHUNK)
                .map(|c| c.iter().map(|&x| u64::from(x)).sum::<u64>())
                .sum::<u64>()
        })
    });
    g.bench_function("rdb_crate_0_4", |b| b.iter(|| rdb_crate_parse(&data)));
    g.bench_function("crc64_only", |b| b.iter(|| crc64(0, &data)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
