//! `rdb-convert` on files written here with `rdb::Writer` (no server needed): every value kind
//! comes out with the same data whichever path the tool takes for it (strings held or copied
//! through in pieces, LZF strings, collections written item by item, quicklists node by node,
//! collected values), from a file or from stdin, and each option does what its doc header
//! says: `--no-repl-info`, the duplicate-key filter and its exact second pass
//! (`--dedup-bytes`, `--max-suspects`, none on stdin), `--max-value-bytes`, `--allow-newer`.
//! Every refusal removes OUT. Loading the results into real servers is `interop_writer`'s job.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use bytes::Bytes;
use respsync::rdb::{
    AuxFields, Collector, HashEntry, KeyOptions, Parser, ParserConfig, RawKind, RdbEvent, ReplInfo,
    Stream, StreamEntry, StreamId, StreamMeta, Value, Writer, WriterConfig,
};
use support::{example_binary, TempDir};

fn b(s: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(s.as_ref())
}

/// Bytes that LZF cannot shrink.
fn noise(n: usize, seed: u64) -> Bytes {
    support::dataset::noise(n, seed).into()
}

/// Bytes that LZF shrinks well.
fn text(n: usize) -> Bytes {
    b"abcdefgh-".iter().copied().cycle().take(n).collect()
}

type Key = (u64, String, Value, KeyOptions);

/// A file of `keys` at `version`, strings LZF-compressed if `compression`.
fn write(version: u8, compression: bool, repl: bool, keys: &[Key]) -> Vec<u8> {
    let mut w = Writer::new(WriterConfig {
        version,
        compression,
        aux: AuxFields {
            redis_ver: b("7.0.15"),
            repl: repl.then(|| ReplInfo {
                stream_db: 0,
                id: b("7a81a83af48c8fb429245b3228cc826f9eed4370"),
                offset: 4242,
            }),
            ..AuxFields::default()
        },
        ..WriterConfig::default()
    })
    .unwrap();
    let mut file = Vec::new();
    let mut db = None;
    for (d, key, value, options) in keys {
        if db != Some(*d) {
            let n = keys.iter().filter(|k| k.0 == *d).count() as u64;
            w.select_db(*d, n, 0).unwrap();
            db = Some(*d);
        }
        w.key(key.as_bytes(), value, *options).unwrap();
        while let Some(chunk) = w.poll_chunk() {
            file.extend_from_slice(&chunk);
        }
    }
    file.extend_from_slice(&w.finish().unwrap());
    file
}

/// Every value kind, in the encodings that take each of the tool's paths.
fn dataset() -> Vec<Key> {
    let none = KeyOptions::default();
    let list = |n: usize| Value::List((0..n).map(|i| b(format!("element-{i}"))).collect());
    let set = |n: usize, ints: bool| {
        Value::Set(
            (0..n)
                .map(|i| match ints {
                    true => b((i * 3).to_string()),
                    false => b(format!("member-{i}")),
                })
                .collect(),
        )
    };
    let zset = |n: usize| {
        Value::Zset(
            (0..n)
                .map(|i| (b(format!("m{i}")), i as f64 / 7.0))
                .collect(),
        )
    };
    let hash = |n: usize| {
        Value::Hash(
            (0..n)
                .map(|i| HashEntry {
                    field: b(format!("field-{i}")),
                    value: b(format!("value-{i}")),
                    expire_ms: None,
                })
                .collect(),
        )
    };
    let entries: Vec<StreamEntry> = (1..=3)
        .map(|i| StreamEntry {
            id: StreamId {
                ms: 1_700_000_000_000,
                seq: i,
            },
            fields: vec![(b("n"), b(i.to_string()))],
        })
        .collect();
    let stream = Value::Stream(Box::new(Stream {
        meta: StreamMeta::new(3, entries[2].id),
        entries,
        groups: Vec::new(),
    }));
    let mut keys: Vec<Key> = vec![
        (0, "empty".into(), Value::String(Bytes::new()), none),
        (0, "int".into(), Value::String(b("12345")), none),
        (0, "short".into(), Value::String(text(100)), none),
        (0, "pieces".into(), Value::String(noise(200_000, 1)), none),
        (0, "mib".into(), Value::String(text(1 << 20)), none),
        (
            0,
            "long".into(),
            Value::String(noise((1 << 20) + 1, 2)),
            none,
        ),
        (0, "longtext".into(), Value::String(text(3 << 20)), none),
        (0, "list".into(), list(20), none),
        (0, "biglist".into(), list(5000), none),
        (0, "intset".into(), set(20, true), none),
        (0, "set".into(), set(20, false), none),
        (0, "bigset".into(), set(3000, false), none),
        (0, "zset".into(), zset(20), none),
        (0, "bigzset".into(), zset(3000), none),
        (0, "hash".into(), hash(20), none),
        (0, "bighash".into(), hash(3000), none),
        (0, "stream".into(), stream, none),
        (
            0,
            "expiring".into(),
            Value::String(b("v")),
            KeyOptions::expire_at(4_000_000_000_000),
        ),
    ];
    keys.extend((0..50).map(|i| (3, format!("k{i}"), Value::String(b(format!("v{i}"))), none)));
    keys
}

/// The keys of a file, with collections in a canonical order (encodings may reorder them).
fn keys_of(file: &[u8]) -> Vec<(u64, Bytes, Option<i64>, Value)> {
    let mut parser = Parser::new(ParserConfig::default());
    let mut collector = Collector::new(u64::MAX);
    parser.push(file);
    parser.finish();
    let mut keys = Vec::new();
    while let Some(ev) = parser.poll_event().unwrap() {
        if let Some((info, value)) = collector.handle_event(ev).unwrap() {
            let value = match value {
                Value::Set(mut s) => {
                    s.sort();
                    Value::Set(s)
                }
                Value::Zset(mut z) => {
                    z.sort_by(|a, b| a.0.cmp(&b.0));
                    Value::Zset(z)
                }
                Value::Hash(mut h) => {
                    h.sort_by(|a, b| a.field.cmp(&b.field));
                    Value::Hash(h)
                }
                // The RDB 10+ metadata is not stored at 9 (Redis derives it on load).
                Value::Stream(mut s) => {
                    let groups = s.meta.groups;
                    s.meta = StreamMeta::new(s.meta.length, s.meta.last_id);
                    s.meta.groups = groups;
                    Value::Stream(s)
                }
                v => v,
            };
            keys.push((info.db, info.key, info.expire.map(|e| e.as_millis()), value));
        }
    }
    assert!(parser.is_done());
    keys
}

/// The AUX fields of a file.
fn aux_of(file: &[u8]) -> Vec<(Bytes, Bytes)> {
    let mut parser = Parser::new(ParserConfig::default());
    parser.push(file);
    parser.finish();
    let mut aux = Vec::new();
    while let Some(ev) = parser.poll_event().unwrap() {
        if let RdbEvent::Aux { name, value } = ev {
            aux.push((name, value));
        }
    }
    aux
}

/// How each string key's value is stored: `true` if LZF-compressed.
fn compressed_strings(file: &[u8]) -> Vec<(Bytes, bool)> {
    let mut config = ParserConfig::default();
    config.lazy_values(true);
    let mut parser = Parser::new(config);
    parser.push(file);
    parser.finish();
    let mut out = Vec::new();
    let mut key = None;
    while let Some(ev) = parser.poll_event().unwrap() {
        match ev {
            RdbEvent::KeyStart(info) => key = Some(info.key),
            RdbEvent::Raw(raw) if raw.as_raw_ref().kind() == RawKind::String => {
                out.push((key.take().unwrap(), true))
            }
            RdbEvent::StringChunk(_) => {
                if let Some(k) = key.take() {
                    out.push((k, false));
                }
            }
            _ => {}
        }
    }
    out
}

struct Run {
    dir: TempDir,
}

impl Run {
    fn new() -> Run {
        Run {
            dir: TempDir::new("rdb-convert"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    /// Converts `file` (from a file, or piped to stdin); OUT's bytes, or stderr on failure
    /// (after checking that OUT was removed).
    fn convert(&self, file: &[u8], stdin: bool, args: &[&str]) -> Result<Vec<u8>, String> {
        let input = self.path("in.rdb");
        let out = self.path("out.rdb");
        std::fs::write(&input, file).unwrap();
        let _ = std::fs::remove_file(&out);
        let mut cmd = Command::new(example_binary("rdb-convert"));
        if stdin {
            cmd.arg("-").stdin(Stdio::piped());
        } else {
            cmd.arg(&input).stdin(Stdio::null());
        }
        cmd.arg(&out)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if stdin {
            let mut pipe = child.stdin.take().unwrap();
            // The tool may stop reading early on an error.
            let _ = pipe.write_all(file);
        }
        let done = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&done.stderr).into_owned();
        if done.status.success() {
            Ok(std::fs::read(&out).unwrap())
        } else {
            assert_eq!(done.status.code(), Some(1), "{stderr}");
            assert!(!out.exists(), "OUT left behind after: {stderr}");
            Err(stderr)
        }
    }
}

#[test]
fn every_value_kind_converts_with_the_same_data() {
    let run = Run::new();
    let keys = dataset();
    // Strings stored raw (compression off) and LZF-compressed (on).
    for compression in [false, true] {
        let source = write(11, compression, true, &keys);
        let want = keys_of(&source);
        assert_eq!(want.len(), keys.len());
        for (stdin, args) in [
            (false, &[][..]),
            (true, &[]),
            (false, &["--rdb-version", "9"]),
            (false, &["--rdb-version", "12"]),
        ] {
            let out = run
                .convert(&source, stdin, args)
                .unwrap_or_else(|e| panic!("{args:?} stdin {stdin}: {e}"));
            let version = args.get(1).map_or("10", |v| v);
            assert!(out.starts_with(format!("REDIS00{version:0>2}").as_bytes()));
            assert_eq!(keys_of(&out), want, "{args:?} stdin {stdin}");
            // Version 9 has no aof-base field.
            let aux = |f: &[u8]| {
                let mut aux = aux_of(f);
                aux.retain(|a| a.0 != "aof-base");
                aux
            };
            assert_eq!(aux(&out), aux(&source), "{args:?}");
        }
    }
}

#[test]
fn strings_over_one_mib_are_copied_through_raw_and_shorter_ones_rewritten() {
    let run = Run::new();
    let keys = dataset();
    // Source strings raw: the 1 MiB one is held and compressed as Redis would; the longer
    // ones are copied through in pieces, so they stay raw.
    let out = run
        .convert(&write(10, false, false, &keys), false, &[])
        .unwrap();
    let stored = compressed_strings(&out);
    let of = |k: &str| stored.iter().find(|s| s.0 == k.as_bytes()).unwrap().1;
    assert!(of("mib") && of("short"));
    assert!(!of("longtext"));
    // An LZF source string is held whatever its length, so it is compressed again.
    let out = run
        .convert(&write(10, true, false, &keys), false, &[])
        .unwrap();
    let stored = compressed_strings(&out);
    assert!(stored.iter().find(|s| s.0 == "longtext").unwrap().1);
}

#[test]
fn no_repl_info_leaves_out_the_replication_fields() {
    let run = Run::new();
    let source = write(10, true, true, &dataset()[..3]);
    let names = |file: &[u8]| -> Vec<Bytes> { aux_of(file).into_iter().map(|a| a.0).collect() };
    let kept = names(&run.convert(&source, false, &[]).unwrap());
    for name in ["repl-stream-db", "repl-id", "repl-offset"] {
        assert!(kept.iter().any(|n| n == name), "{name}");
    }
    let dropped = names(&run.convert(&source, false, &["--no-repl-info"]).unwrap());
    assert!(
        !dropped.iter().any(|n| n.starts_with(b"repl-")),
        "{dropped:?}"
    );
    assert!(dropped.iter().any(|n| n == "redis-ver"));
}

#[test]
fn duplicate_keys_are_found_exactly_with_any_filter_size() {
    let run = Run::new();
    let s = |v: &str| Value::String(b(v));
    let none = KeyOptions::default();
    let mut unique: Vec<Key> = (0..300)
        .map(|i| (0, format!("k{i}"), s("v"), none))
        .collect();
    // The same name in another database is no repeat.
    unique.push((1, "k0".into(), s("v"), none));
    let unique_file = write(10, true, false, &unique);
    let want = keys_of(&unique_file);
    // A 64-bit filter flags almost every key: the second pass clears them all.
    for args in [&[][..], &["--dedup-bytes", "8"]] {
        let out = run.convert(&unique_file, false, args).unwrap();
        assert_eq!(keys_of(&out), want, "{args:?}");
    }
    let err = run
        .convert(
            &unique_file,
            false,
            &["--dedup-bytes", "8", "--max-suspects", "5"],
        )
        .unwrap_err();
    assert!(err.contains("more than 5 possible duplicate keys"), "{err}");
    // Stdin cannot be read twice: a suspect is an error there, none is fine.
    let err = run
        .convert(&unique_file, true, &["--dedup-bytes", "8"])
        .unwrap_err();
    assert!(err.contains("stdin cannot be read twice"), "{err}");
    assert_eq!(
        keys_of(&run.convert(&unique_file, true, &[]).unwrap()),
        want
    );
    // A real repeat, of a held string and of a streamed collection.
    for (key, value) in [
        ("k7", s("again")),
        (
            "k8",
            Value::Set((0..600).map(|i| b(i.to_string())).collect()),
        ),
    ] {
        let mut twice = unique.clone();
        twice.insert(250, (0, key.into(), value, none));
        let file = write(10, true, false, &twice);
        for args in [&[][..], &["--dedup-bytes", "8"]] {
            let err = run.convert(&file, false, args).unwrap_err();
            assert!(
                err.contains(&format!("key {key} appears twice in db 0")),
                "{err}"
            );
        }
    }
}

#[test]
fn max_value_bytes_limits_held_values_only() {
    let run = Run::new();
    let none = KeyOptions::default();
    // The limit counts a value's bytes plus 16 per piece delivered (one piece here).
    for compression in [false, true] {
        let file = write(
            10,
            compression,
            false,
            &[(0, "k".into(), Value::String(text(3000)), none)],
        );
        assert!(run
            .convert(&file, false, &["--max-value-bytes", "3016"])
            .is_ok());
        let err = run
            .convert(&file, false, &["--max-value-bytes", "3015"])
            .unwrap_err();
        assert!(
            err.contains("value size 3016 exceeds the limit 3015"),
            "{err}"
        );
    }
    // A string of several pieces, and a collection held whole.
    let file = write(
        10,
        false,
        false,
        &[(0, "k".into(), Value::String(noise(200_000, 3)), none)],
    );
    let err = run
        .convert(&file, false, &["--max-value-bytes", "150000"])
        .unwrap_err();
    // Pieces of 64 KiB: the third one goes over.
    assert!(
        err.contains("value size 196656 exceeds the limit 150000"),
        "{err}"
    );
    let small_hash = Value::Hash(
        (0..10)
            .map(|i| HashEntry {
                field: b(format!("f{i}")),
                value: b("v"),
                expire_ms: None,
            })
            .collect(),
    );
    let file = write(10, true, false, &[(0, "h".into(), small_hash, none)]);
    let err = run
        .convert(&file, false, &["--max-value-bytes", "100"])
        .unwrap_err();
    assert!(err.contains("value size"), "{err}");
    // Strings over 1 MiB and streamed collections are copied through, never held.
    let big = [
        (0, "big".into(), Value::String(noise(3 << 20, 4)), none),
        (
            0,
            "set".into(),
            Value::Set((0..1000).map(|i| b(format!("m{i}"))).collect()),
            none,
        ),
    ];
    let file = write(10, false, false, &big);
    let out = run
        .convert(&file, false, &["--max-value-bytes", "100"])
        .unwrap();
    assert_eq!(keys_of(&out).len(), 2);
}

#[test]
fn newer_versions_need_allow_newer() {
    let run = Run::new();
    let none = KeyOptions::default();
    // No checksum, so that the header can be patched.
    let mut w = Writer::new(WriterConfig {
        checksum: false,
        ..WriterConfig::default()
    })
    .unwrap();
    w.select_db(0, 1, 0).unwrap();
    w.key(b"k", &Value::String(b("v")), none).unwrap();
    let mut file = w.finish().unwrap().to_vec();
    file[5..9].copy_from_slice(b"0014");
    let err = run.convert(&file, false, &[]).unwrap_err();
    assert!(err.contains("unsupported rdb version 14"), "{err}");
    let out = run.convert(&file, false, &["--allow-newer"]).unwrap();
    assert!(out.starts_with(b"REDIS0010"));
    assert_eq!(keys_of(&out).len(), 1);
}

#[test]
fn truncated_input_and_unwritable_values_are_refused() {
    let run = Run::new();
    let keys = dataset();
    let file = write(10, false, false, &keys);
    // Inside the long string being copied through, inside a collection, before the end.
    let at = |needle: &[u8]| {
        file.windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
    };
    for cut in [
        at(b"longtext") + 2_000_000,
        at(b"bighash") + 500,
        file.len() - 3,
    ] {
        for stdin in [false, true] {
            let err = run.convert(&file[..cut], stdin, &[]).unwrap_err();
            assert!(err.contains("unexpected end"), "cut {cut}: {err}");
        }
    }
    // A hash field TTL cannot be written below version 12: the error names the key.
    let ttl = Value::Hash(vec![HashEntry {
        field: b("f"),
        value: b("v"),
        expire_ms: Some(4_000_000_000_000),
    }]);
    let file = write(
        12,
        true,
        false,
        &[(0, "ttlhash".into(), ttl, KeyOptions::default())],
    );
    let err = run.convert(&file, false, &[]).unwrap_err();
    assert!(
        err.contains("ttlhash") && err.contains("rdb version 12"),
        "{err}"
    );
    assert!(run.convert(&file, false, &["--rdb-version", "12"]).is_ok());
}
