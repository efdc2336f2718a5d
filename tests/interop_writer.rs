//! Interop for `rdb::Writer`, DUMP payloads and `rdb-convert` with a real `redis-server` 7.0
//! (and `valkey-server` 8.1 for RDB 11): written files pass `redis-check-rdb` and load with
//! exactly the data written (every type, small and big encodings, expiries, several
//! databases, functions); `RESTORE` accepts our payloads of every type and the server's own
//! payloads parse back; and every corpus file Redis 7.0 cannot load is either converted into
//! one it loads with the same data or refused with the error this test expects for it. The
//! servers must be installed: these tests fail (never skip) when one is missing.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use respsync::rdb::encoding::object::ObjectEncoder;
use respsync::rdb::{
    parse_dump_payload, Collector, HashEntry, KeyOptions, Parser, ParserConfig, RdbEvent, Stream,
    StreamEntry, StreamId, StreamMeta, Value, Writer, WriterConfig,
};
use support::corpus::{corpus_dir, corpus_files, expected};
use support::{check_key, example_binary, redis_binary, valkey_binary, FrameExt, Proc};

fn b(s: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(s.as_ref())
}

fn entry(field: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> HashEntry {
    HashEntry {
        field: b(field),
        value: b(value),
        expire_ms: None,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn stream(n: u64, wide: bool) -> Value {
    let entries: Vec<StreamEntry> = (1..=n)
        .map(|i| StreamEntry {
            id: StreamId {
                ms: 1_700_000_000_000 + i / 3,
                seq: i % 3,
            },
            fields: if i % 7 == 0 {
                vec![(b("other"), b(format!("v{i}")))]
            } else if wide {
                vec![
                    (b("blob"), b("x".repeat(300 + i as usize))),
                    (b("n"), b("42")),
                ]
            } else {
                vec![
                    (b("name"), b(format!("value-{i}"))),
                    (b("n"), b(i.to_string())),
                ]
            },
        })
        .collect();
    let last = entries.last().unwrap().id;
    Value::Stream(Box::new(Stream {
        meta: StreamMeta::new(entries.len() as u64, last),
        entries,
        groups: Vec::new(),
    }))
}

/// Every type in small and big encodings.
fn values() -> Vec<(String, Value)> {
    vec![
        ("s:raw".into(), Value::String(b("hello"))),
        ("s:int".into(), Value::String(b("-21589"))),
        ("s:big-int".into(), Value::String(b("9223372036854775807"))),
        ("s:empty".into(), Value::String(b(""))),
        ("s:lzf".into(), Value::String(b("abc".repeat(500)))),
        (
            "s:binary".into(),
            Value::String(Bytes::from(
                (0..5000u32)
                    .map(|i| (i * 7919 % 251) as u8)
                    .collect::<Vec<_>>(),
            )),
        ),
        ("l:small".into(), Value::List(vec![b("a"), b("1"), b("-5")])),
        (
            "l:big".into(),
            Value::List((0..5000).map(|i| b(format!("element-{i:06}"))).collect()),
        ),
        (
            "l:huge-element".into(),
            Value::List(vec![b("x".repeat(20_000)), b("y")]),
        ),
        (
            "set:intset".into(),
            Value::Set(
                (0..100i64)
                    .map(|i| b((i * 37 - 1000).to_string()))
                    .collect(),
            ),
        ),
        (
            "set:many-ints".into(),
            Value::Set((0..600i64).map(|i| b(i.to_string())).collect()),
        ),
        (
            "set:small".into(),
            Value::Set((0..50).map(|i| b(format!("m{i}"))).collect()),
        ),
        (
            "set:big".into(),
            Value::Set((0..300).map(|i| b(format!("member-{i}"))).collect()),
        ),
        (
            "z:small".into(),
            Value::Zset(vec![
                (b("a"), 1.0),
                (b("b"), -2.5e-10),
                (b("inf"), f64::INFINITY),
                (b("c"), 1e300),
            ]),
        ),
        (
            "z:big".into(),
            Value::Zset(
                (0..300)
                    .map(|i| (b(format!("m{i}")), f64::from(i) / 7.0))
                    .collect(),
            ),
        ),
        (
            "h:small".into(),
            Value::Hash(
                (0..20)
                    .map(|i| entry(format!("f{i}"), format!("v{i}")))
                    .collect(),
            ),
        ),
        (
            "h:big".into(),
            Value::Hash(
                (0..600)
                    .map(|i| entry(format!("f{i}"), i.to_string()))
                    .collect(),
            ),
        ),
        (
            "h:long-value".into(),
            Value::Hash(vec![entry("f", "v".repeat(100)), entry("g", "1")]),
        ),
        ("st:small".into(), stream(2, false)),
        ("st:big".into(), stream(250, false)),
        ("st:wide".into(), stream(20, true)),
    ]
}

const LIBRARY: &str =
    "#!lua name=writerlib\nredis.register_function('wf', function() return 7 end)";

/// A key: name, value, expiry.
type Key = (String, Value, Option<i64>);

/// A key of a parsed file: db, key, expiry, value.
type DbKey = (u64, Bytes, Option<i64>, Value);

/// Databases 0, 3 and 15, some keys with an expiry.
fn dataset() -> Vec<(u64, Vec<Key>)> {
    // Year 2096: far enough ahead, and the same on every call.
    let expire = 4_000_000_000_000;
    let all = values();
    let mut dbs = vec![(0, Vec::new()), (3, Vec::new()), (15, Vec::new())];
    for (i, (key, value)) in all.into_iter().enumerate() {
        let exp = (i % 3 == 1).then_some(expire + i as i64);
        dbs[i % 3].1.push((key, value, exp));
    }
    dbs
}

/// Writes the dataset at `version`, draining the writer in the pieces it produces.
fn write(version: u8) -> Vec<u8> {
    let mut w = Writer::new(WriterConfig {
        version,
        ..WriterConfig::default()
    })
    .unwrap();
    let mut file = Vec::new();
    if version >= 10 {
        w.function(LIBRARY.as_bytes()).unwrap();
    }
    for (db, keys) in dataset() {
        let expires = keys.iter().filter(|k| k.2.is_some()).count() as u64;
        w.select_db(db, keys.len() as u64, expires).unwrap();
        for (key, value, exp) in &keys {
            let opts = KeyOptions {
                expire_ms: *exp,
                ..KeyOptions::default()
            };
            w.key(key.as_bytes(), value, opts).unwrap();
            while let Some(chunk) = w.poll_chunk() {
                file.extend_from_slice(&chunk);
            }
        }
    }
    file.extend_from_slice(&w.finish().unwrap());
    file
}

fn check_rdb(file: &[u8], name: &str) {
    let path =
        std::env::temp_dir().join(format!("respsync-writer-{}-{name}.rdb", std::process::id()));
    std::fs::write(&path, file).unwrap();
    let check = Command::new("redis-check-rdb")
        .arg(&path)
        .output()
        .expect("redis-check-rdb is required (apt-get install redis-tools)");
    let _ = std::fs::remove_file(&path);
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        report.contains("RDB looks OK"),
        "redis-check-rdb {name}: {report}"
    );
}

/// Loads the written file and compares every key, expiry and the function library.
fn loads(binary: &Path, version: u8) {
    let file = write(version);
    let server = Proc::peer_loading(binary, &[], Some(&file));
    let mut c = server.conn();
    for (db, keys) in dataset() {
        c.run(&format!("SELECT {db}"));
        assert_eq!(c.run("DBSIZE").int(), keys.len() as i64, "db {db}");
        for (key, value, exp) in &keys {
            check_key(&mut c, key, value);
            let got = c.must(&[b"PEXPIRETIME", key.as_bytes()]).int();
            assert_eq!(got, exp.unwrap_or(-1), "expiry of {key}");
        }
    }
    if version >= 10 {
        assert_eq!(c.run("FCALL wf 0").int(), 7);
    }
}

#[test]
fn redis_7_0_loads_written_files() {
    for version in [9, 10] {
        check_rdb(&write(version), &format!("v{version}"));
        loads(&redis_binary(), version);
    }
}

/// Big collections written item by item (`begin_*`/`end_*`, drained after every item, so
/// never held whole) load into Redis 7.0 with exactly their data, at versions 9 and 10: lists
/// by count and node by node, hash-table sets and hashes, skiplist zsets, and a set that
/// starts out integer-only and turns into a hash table midway.
#[test]
fn redis_7_0_loads_big_collections_written_in_pieces() {
    let n = 30_000usize;
    let item = |i: usize| b(format!("item-{i}"));
    let keys: Vec<(&str, Value)> = vec![
        ("list", Value::List((0..n).map(item).collect())),
        ("list-nodes", Value::List((0..n).map(item).collect())),
        ("set", Value::Set((0..n).map(item).collect())),
        (
            "set-turns",
            Value::Set(
                (0..600)
                    .map(|i| b(i.to_string()))
                    .chain([b("x".repeat(100))])
                    .collect(),
            ),
        ),
        (
            "zset",
            Value::Zset((0..n).map(|i| (item(i), i as f64 / 7.0)).collect()),
        ),
        (
            "hash",
            Value::Hash(
                (0..n)
                    .map(|i| entry(format!("f{i}"), format!("v{i}")))
                    .collect(),
            ),
        ),
    ];
    for version in [9, 10] {
        let mut w = Writer::new(WriterConfig {
            version,
            ..WriterConfig::default()
        })
        .unwrap();
        let mut file = Vec::new();
        let mut most_buffered = 0;
        let mut drain = |w: &mut Writer, file: &mut Vec<u8>| {
            most_buffered = most_buffered.max(w.buffered());
            while let Some(chunk) = w.poll_chunk() {
                file.extend_from_slice(&chunk);
            }
        };
        w.select_db(0, keys.len() as u64, 0).unwrap();
        let none = KeyOptions::default();
        for (key, value) in &keys {
            let k = key.as_bytes();
            match value {
                Value::List(items) if *key == "list-nodes" => {
                    // Uneven nodes, as a source quicklist may have them.
                    let nodes: Vec<&[Bytes]> = items.chunks(97).collect();
                    w.begin_list_nodes(k, nodes.len() as u64, none).unwrap();
                    for node in nodes {
                        for e in node {
                            w.list_element(e).unwrap();
                            drain(&mut w, &mut file);
                        }
                        w.end_list_node().unwrap();
                    }
                    w.end_list().unwrap();
                }
                Value::List(items) => {
                    w.begin_list(k, items.len() as u64, none).unwrap();
                    for e in items {
                        w.list_element(e).unwrap();
                        drain(&mut w, &mut file);
                    }
                    w.end_list().unwrap();
                }
                Value::Set(members) => {
                    w.begin_set(k, members.len() as u64, none).unwrap();
                    for m in members {
                        w.set_member(m).unwrap();
                        drain(&mut w, &mut file);
                    }
                    w.end_set().unwrap();
                }
                Value::Zset(pairs) => {
                    w.begin_zset(k, pairs.len() as u64, none).unwrap();
                    for (m, score) in pairs {
                        w.zset_member(m, *score).unwrap();
                        drain(&mut w, &mut file);
                    }
                    w.end_zset().unwrap();
                }
                Value::Hash(entries) => {
                    w.begin_hash(k, entries.len() as u64, none).unwrap();
                    for e in entries {
                        w.hash_field(&e.field, &e.value).unwrap();
                        drain(&mut w, &mut file);
                    }
                    w.end_hash().unwrap();
                }
                _ => unreachable!("only collections above"),
            }
            drain(&mut w, &mut file);
        }
        file.extend_from_slice(&w.finish().unwrap());
        // Never more than a node or a collected small value at a time.
        assert!(most_buffered < 64 << 10, "buffered {most_buffered} bytes");
        check_rdb(&file, &format!("streamed-v{version}"));
        let server = Proc::peer_loading(&redis_binary(), &[], Some(&file));
        let mut c = server.conn();
        assert_eq!(c.run("DBSIZE").int(), keys.len() as i64);
        for (key, value) in &keys {
            check_key(&mut c, key, value);
        }
        // The encodings Redis reports for what it loaded.
        let enc = |c: &mut support::Conn, k: &str| {
            c.must(&[b"OBJECT", b"ENCODING", k.as_bytes()]).bytes()
        };
        assert_eq!(enc(&mut c, "list"), b"quicklist");
        assert_eq!(enc(&mut c, "set"), b"hashtable");
        assert_eq!(enc(&mut c, "set-turns"), b"hashtable");
        assert_eq!(enc(&mut c, "zset"), b"skiplist");
        assert_eq!(enc(&mut c, "hash"), b"hashtable");
    }
}

#[test]
fn valkey_8_1_loads_a_written_version_11_file() {
    loads(&valkey_binary(), 11);
}

/// Order-insensitive comparison form.
fn normalize(v: &Value) -> Value {
    match v {
        Value::Set(m) => {
            let mut m = m.clone();
            m.sort();
            Value::Set(m)
        }
        Value::Zset(p) => {
            let mut p = p.clone();
            p.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Zset(p)
        }
        Value::Hash(h) => {
            let mut h = h.clone();
            h.sort_by(|a, b| a.field.cmp(&b.field));
            Value::Hash(h)
        }
        Value::Stream(s) => Value::List(
            s.entries
                .iter()
                .map(|e| b(format!("{}:{:?}", e.id, e.fields)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `RESTORE` accepts our payloads of every type (including streams); the server's own
/// `DUMP` of each key parses back with `parse_dump_payload` to the same data.
#[test]
fn redis_7_0_restores_payloads_and_its_dumps_parse() {
    let server = Proc::redis(&[]);
    let mut c = server.conn();
    let mut enc = ObjectEncoder::new(10).unwrap();
    for (key, value) in values() {
        let payload = enc.dump_payload(&value).unwrap();
        c.must(&[b"RESTORE", key.as_bytes(), b"0", &payload]);
        check_key(&mut c, &key, &value);
        let theirs = c.must(&[b"DUMP", key.as_bytes()]).bytes();
        let dump = parse_dump_payload(&theirs, &ParserConfig::default(), u64::MAX)
            .unwrap_or_else(|e| panic!("DUMP of {key}: {e}"));
        assert_eq!(dump.version, 10);
        assert_eq!(normalize(&dump.value), normalize(&value), "{key}");
    }
    assert_eq!(c.run("DBSIZE").int(), values().len() as i64);
}

/// The keys of a file as our parser sees them: (db, key, expiry, value).
fn parse_file(data: &[u8]) -> (Vec<DbKey>, usize) {
    let mut parser = Parser::new(ParserConfig::default());
    let mut collector = Collector::new(u64::MAX);
    parser.push(data);
    parser.finish();
    let mut keys = Vec::new();
    let mut functions = 0;
    while let Some(ev) = parser.poll_event().expect("source parses") {
        if matches!(ev, RdbEvent::Function { .. }) {
            functions += 1;
        }
        if let Some((info, value)) = collector.handle_event(ev).unwrap() {
            keys.push((info.db, info.key, info.expire.map(|e| e.as_millis()), value));
        }
    }
    (keys, functions)
}

/// What converting a corpus file for Redis 7.0 must give.
enum Outcome {
    /// Converted; the result loads with the same data.
    Loads,
    /// Refused by rdb-convert with an error containing this text (or one of its
    /// `|`-separated alternatives).
    Refused(&'static str),
    /// Refused without `--lossy` (error text), converted and loaded with it.
    LossyOnly(&'static str),
    /// Converted, but holds module data: Redis without the module refuses it.
    NeedsModule,
}

fn expected_outcome(name: &str) -> Outcome {
    use Outcome::*;
    match name {
        "HDT3213_rdb/hash_as_listpack_with_hfe.rdb"
        | "HDT3213_rdb/hash_with_hfe.rdb"
        | "HDT3213_rdb/valkey_hash2_with_hfe.rdb"
        | "leonchen83_redis-replicator/dump-ttlhash.rdb"
        | "redis_librdb/hash_lp_with_hexpire_v12.rdb"
        | "redis_librdb/hash_with_expire_v12.rdb" => {
            Refused("hash field expiry needs rdb version 12")
        }
        "generated_valkey-8.1.8/valkey81_all_types.rdb" => LossyOnly("consumer active time"),
        // Written by redis-rdb-cli, not Redis: repeated keys (and pre-GA functions). Repeats
        // are confirmed after the first pass, so a pre-GA function is reported first.
        "leonchen83_redis-rdb-cli/rct/all.rdb"
        | "leonchen83_redis-rdb-cli/rdt/34.rdb"
        | "leonchen83_redis-rdb-cli/rdt/dump.rdb"
        | "leonchen83_redis-rdb-cli/rdt/filter.rdb"
        | "leonchen83_redis-rdb-cli/rmt/dump.rdb"
        | "leonchen83_redis-rdb-cli/rdt/12.rdb"
        | "leonchen83_redis-rdb-cli/rdt/89.rdb" => {
            Refused("appears twice in db 0|release-candidate format")
        }
        "leonchen83_redis-replicator/module.rdb" | "maplestoria_redis-event/module.rdb" => {
            Refused("type 6")
        }
        "redis_redis/corrupt_ziplist.rdb" | "valkey-io_valkey/corrupt_ziplist.rdb" => {
            Refused("corrupt ziplist")
        }
        "redis_librdb/future_v19.rdb" => Refused("unsupported rdb version 99"),
        "redis_librdb/invalid_chksum_v8.rdb" => Refused("checksum mismatch"),
        "leonchen83_redis-replicator/dump-module-2.rdb"
        | "maplestoria_redis-event/dump-json-module.rdb"
        | "maplestoria_redis-event/dump-module-2.rdb"
        | "redis_librdb/misc_with_stream.rdb"
        | "redis_librdb/module.rdb"
        | "redis_librdb/module_aux.rdb"
        | "redis_librdb/module_aux_empty.rdb"
        | "redis_librdb/module_aux_v12.rdb"
        | "sripathikrishnan_redis-rdb-tools/redis_40_with_module.rdb"
        | "sripathikrishnan_redis-rdb-tools/redis_60_with_module_aux.rdb"
        | "tommy351_rdb-go/bloom_filter.rdb"
        | "tommy351_rdb-go/bloom_parser_filters.rdb"
        | "tommy351_rdb-go/cuckoo_filter.rdb"
        | "tommy351_rdb-go/redis_40_with_module.rdb"
        | "tommy351_rdb-go/redis_60_with_module_aux.rdb" => NeedsModule,
        _ => Loads,
    }
}

fn convert(input: &Path, output: &Path, lossy: bool) -> Result<(), String> {
    convert_with(input, output, if lossy { &["--lossy"] } else { &[] })
}

fn convert_with(input: &Path, output: &Path, args: &[&str]) -> Result<(), String> {
    let mut cmd = Command::new(example_binary("rdb-convert"));
    cmd.arg(input).arg(output).args(args);
    let out = cmd.output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Loads a converted file and compares it with the source as our parser reads it: every key
/// not expiring within a minute, its value and expiry, and the function count.
fn check_converted(name: &str, source: &[u8], converted: &[u8]) {
    check_rdb(converted, &name.replace('/', "_"));
    let (keys, functions) = parse_file(source);
    let server = Proc::try_peer_loading(&redis_binary(), &["--databases", "64"], Some(converted))
        .unwrap_or_else(|log| panic!("{name}: redis 7.0 refused the converted file:\n{log}"));
    let mut c = server.conn();
    let soon = now_ms() + 60_000;
    let mut compared = 0;
    for (db, key, exp, value) in &keys {
        if exp.is_some_and(|e| e < soon) {
            continue;
        }
        c.run(&format!("SELECT {db}"));
        let k = key.escape_ascii();
        check_key(&mut c, key, value);
        let got = c.must(&[b"PEXPIRETIME", key]).int();
        assert_eq!(got, exp.unwrap_or(-1), "{name}: expiry of {k}");
        compared += 1;
    }
    let listed = c.run("FUNCTION LIST").array().len();
    assert_eq!(listed, functions, "{name}: function libraries");
    let mut total = 0;
    for db in 0..64 {
        c.run(&format!("SELECT {db}"));
        total += c.run("DBSIZE").int();
    }
    assert!(
        total as usize >= compared,
        "{name}: {total} keys < {compared}"
    );
    assert!(
        total as usize <= keys.len(),
        "{name}: {total} keys > {}",
        keys.len()
    );
}

/// Every corpus file Redis 7.0.15 does not load (RDB 11+, Valkey's, and the rest its
/// expected JSON marks as refused) gets exactly the outcome `expected_outcome` names.
#[test]
fn rdb_convert_makes_corpus_files_load_into_redis_7_0() {
    let dir = corpus_dir();
    let tmp = std::env::temp_dir().join(format!("respsync-convert-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut counts = [0usize; 4];
    for path in corpus_files() {
        let exp = expected(&path);
        if exp["load_test_redis_7_0_15"]["load"] == "ok" {
            continue;
        }
        let name = path
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let out = tmp.join(name.replace('/', "_"));
        let source = std::fs::read(&path).unwrap();
        match expected_outcome(&name) {
            Outcome::Loads => {
                convert(&path, &out, false).unwrap_or_else(|e| panic!("{name}: {e}"));
                check_converted(&name, &source, &std::fs::read(&out).unwrap());
                counts[0] += 1;
            }
            Outcome::Refused(text) => {
                let err = convert(&path, &out, false).expect_err(&name);
                assert!(text.split('|').any(|t| err.contains(t)), "{name}: {err}");
                assert!(!out.exists(), "{name}: output left behind");
                counts[1] += 1;
            }
            Outcome::LossyOnly(text) => {
                let err = convert(&path, &out, false).expect_err(&name);
                assert!(err.contains(text), "{name}: {err}");
                convert(&path, &out, true).unwrap_or_else(|e| panic!("{name}: {e}"));
                check_converted(&name, &source, &std::fs::read(&out).unwrap());
                counts[2] += 1;
            }
            Outcome::NeedsModule => {
                convert(&path, &out, false).unwrap_or_else(|e| panic!("{name}: {e}"));
                let converted = std::fs::read(&out).unwrap();
                check_rdb(&converted, &name.replace('/', "_"));
                match Proc::try_peer_loading(
                    &redis_binary(),
                    &["--databases", "64"],
                    Some(&converted),
                ) {
                    Ok(_) => panic!("{name}: redis loaded module data without the module"),
                    Err(log) => assert!(log.contains("module"), "{name}: {log}"),
                }
                counts[3] += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    // loads, refused, lossy-only, needs a module
    assert_eq!(counts, [41, 19, 1, 15]);
}

/// A file Redis 7.0 saved (`DEBUG POPULATE` strings plus every type restored from our
/// payloads, expiries, two databases and a function) comes out of `rdb-convert` byte for
/// byte as Redis wrote it: same AUX fields, same key order, same encodings.
#[test]
fn rdb_convert_reproduces_a_redis_7_0_save_byte_for_byte() {
    let server = Proc::redis(&["--enable-debug-command", "yes"]);
    let mut c = server.conn();
    c.run("DEBUG POPULATE 20000 key 100");
    c.run("SELECT 5");
    let mut enc = ObjectEncoder::new(10).unwrap();
    for (i, (key, value)) in values().into_iter().enumerate() {
        let payload = enc.dump_payload(&value).unwrap();
        c.must(&[b"RESTORE", key.as_bytes(), b"0", &payload]);
        if i % 2 == 0 {
            c.must(&[b"PEXPIREAT", key.as_bytes(), b"4000000000000"]);
        }
    }
    c.must(&[b"FUNCTION", b"LOAD", LIBRARY.as_bytes()]);
    c.run("SAVE");
    let saved = server.dir.0.join("dump.rdb");
    let out = server.dir.0.join("converted.rdb");
    convert(&saved, &out, false).unwrap();
    let theirs = std::fs::read(&saved).unwrap();
    let ours = std::fs::read(&out).unwrap();
    assert_eq!(ours.len(), theirs.len());
    assert!(ours == theirs, "converted file differs from redis's");
}

/// Newer compact encodings (set/hash/zset listpacks, quicklist 2, stream types 19/21)
/// converted down to RDB 9 (ziplists, quicklist of ziplists, stream type 15) load into
/// Redis 7.0 with the same data.
#[test]
fn rdb_convert_writes_version_9_that_redis_7_0_loads() {
    let dir = corpus_dir();
    let tmp = std::env::temp_dir().join(format!("respsync-convert9-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for name in [
        "redis_librdb/set_lp_v11.rdb",
        "redis_librdb/hash_lp_v11.rdb",
        "redis_librdb/zset_lp_v11.rdb",
        "redis_librdb/quicklist2_v11.rdb",
        "redis_librdb/100_lists.rdb",
        "badboy_rdb-rs/hash_list_pack.rdb",
        "HDT3213_rdb/tree.rdb",
    ] {
        let path = dir.join(name);
        let out = tmp.join(name.replace('/', "_"));
        convert_with(&path, &out, &["--rdb-version", "9"])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let converted = std::fs::read(&out).unwrap();
        assert!(converted.starts_with(b"REDIS0009"), "{name}");
        check_converted(name, &std::fs::read(&path).unwrap(), &converted);
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
