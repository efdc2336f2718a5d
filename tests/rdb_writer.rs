//! `rdb::Writer` against the parser: arbitrary datasets (several databases, every type,
//! expiries, LRU/LFU data, functions, AUX fields) written at RDB 9–12 and drained in
//! arbitrary pieces parse back to the same data; DUMP payloads parse back with
//! `parse_dump_payload`, and the corpus' real payloads decode.

mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use respsync::rdb::encoding::object::ObjectEncoder;
use respsync::rdb::{
    parse_dump_payload, AuxFields, Checksum, Collector, DumpError, HashEntry, KeyOptions, Parser,
    ParserConfig, RdbEvent, ReplInfo, Stream, StreamEntry, StreamId, StreamMeta, Value, WriteError,
    Writer, WriterConfig,
};

fn b(s: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(s.as_ref())
}

/// Order-insensitive form of a value: sets, zsets and hashes sorted.
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
        other => other.clone(),
    }
}

/// What a parse yields: aux fields, functions, and per database the keys with their options.
#[derive(Debug, Default, PartialEq)]
struct Parsed {
    aux: Vec<(Bytes, Bytes)>,
    functions: Vec<Bytes>,
    dbs: BTreeMap<u64, Vec<(Bytes, KeyOptions, Value)>>,
    resize: BTreeMap<u64, (u64, u64)>,
    checksum: Option<Checksum>,
}

/// Parses `data` pushed in pieces cut at `cuts`.
fn parse(data: &[u8], cuts: &[usize]) -> Parsed {
    let mut parser = Parser::new(ParserConfig::default());
    let mut collector = Collector::new(u64::MAX);
    let mut out = Parsed::default();
    let mut db = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    let mut drain = |parser: &mut Parser, out: &mut Parsed| {
        while let Some(ev) = parser.poll_event().expect("written file parses") {
            match &ev {
                RdbEvent::Aux { name, value } => out.aux.push((name.clone(), value.clone())),
                RdbEvent::Function { code } => out.functions.push(code.clone()),
                RdbEvent::SelectDb { db: d } => db = *d,
                RdbEvent::ResizeDb { keys, expires } => {
                    out.resize.insert(db, (*keys, *expires));
                }
                RdbEvent::End { checksum } => out.checksum = Some(*checksum),
                _ => {}
            }
            if let Some((info, value)) = collector.handle_event(ev).unwrap() {
                let opts = KeyOptions {
                    expire_ms: info.expire.map(|e| e.as_millis()),
                    idle_s: info.idle_s,
                    freq: info.freq,
                };
                out.dbs
                    .entry(info.db)
                    .or_default()
                    .push((info.key, opts, normalize(&value)));
            }
        }
    };
    for w in points.windows(2) {
        parser.push(&data[w[0]..w[1]]);
        drain(&mut parser, &mut out);
    }
    parser.finish();
    drain(&mut parser, &mut out);
    assert!(parser.is_done());
    out
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        any::<i64>().prop_map(|v| b(v.to_string())),
        (-300i64..300).prop_map(|v| b(v.to_string())),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from),
        (0usize..200, any::<u8>()).prop_map(|(n, c)| b(vec![c; n])),
    ]
}

fn dedup<T: Clone, K: Ord + Clone>(v: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    let mut seen = std::collections::BTreeSet::new();
    v.into_iter().filter(|x| seen.insert(key(x))).collect()
}

fn arb_stream(version: u8) -> impl Strategy<Value = Value> {
    proptest::collection::vec(
        (
            1u64..5,
            proptest::collection::vec((arb_bytes(), arb_bytes()), 1..4),
        ),
        1..150,
    )
    .prop_map(move |raw| {
        let mut id = StreamId {
            ms: 1_700_000_000_000,
            seq: 0,
        };
        let entries: Vec<StreamEntry> = raw
            .into_iter()
            .map(|(step, fields)| {
                id = if step == 1 {
                    StreamId {
                        ms: id.ms,
                        seq: id.seq + 1,
                    }
                } else {
                    StreamId {
                        ms: id.ms + step,
                        seq: 0,
                    }
                };
                StreamEntry { id, fields }
            })
            .collect();
        let mut meta = StreamMeta::new(entries.len() as u64, id);
        if version >= 10 {
            // What the parser reports for types 19 and 21.
            meta.first_id = Some(entries[0].id);
            meta.max_deleted_id = Some(StreamId { ms: 0, seq: 0 });
            meta.entries_added = Some(entries.len() as u64);
        }
        Value::Stream(Box::new(Stream {
            entries,
            meta,
            groups: Vec::new(),
        }))
    })
}

fn arb_value(version: u8) -> impl Strategy<Value = Value> {
    let ttl = version >= 12;
    prop_oneof![
        arb_bytes().prop_map(Value::String),
        proptest::collection::vec(arb_bytes(), 1..300).prop_map(Value::List),
        proptest::collection::vec(arb_bytes(), 1..200)
            .prop_map(|v| Value::Set(dedup(v, Bytes::clone))),
        proptest::collection::vec(any::<i64>().prop_map(|i| b(i.to_string())), 1..600)
            .prop_map(|v| Value::Set(dedup(v, Bytes::clone))),
        proptest::collection::vec(
            (
                arb_bytes(),
                any::<f64>().prop_filter("nan", |f| !f.is_nan())
            ),
            1..200
        )
        .prop_map(|v| Value::Zset(dedup(v, |p| p.0.clone()))),
        proptest::collection::vec(
            (
                arb_bytes(),
                arb_bytes(),
                proptest::option::of(0i64..(1 << 48))
            ),
            1..200
        )
        .prop_map(move |v| {
            Value::Hash(
                dedup(v, |p| p.0.clone())
                    .into_iter()
                    .map(|(field, value, e)| HashEntry {
                        field,
                        value,
                        expire_ms: e.filter(|_| ttl),
                    })
                    .collect(),
            )
        }),
        arb_stream(version),
    ]
    .prop_map(|v| normalize(&v))
}

fn arb_options() -> impl Strategy<Value = KeyOptions> {
    (
        proptest::option::of(any::<i64>()),
        proptest::option::of(0u64..1 << 40),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(expire_ms, idle_s, freq)| KeyOptions {
            expire_ms,
            idle_s,
            freq,
        })
}

type Dataset = BTreeMap<u64, Vec<(Bytes, KeyOptions, Value)>>;

fn arb_dataset(version: u8) -> impl Strategy<Value = Dataset> {
    proptest::collection::btree_map(
        0u64..20,
        proptest::collection::vec((arb_bytes(), arb_options(), arb_value(version)), 1..5)
            .prop_map(|keys| dedup(keys, |k| k.0.clone())),
        0..4,
    )
}

/// Writes `data` with `functions`, draining the writer after every call.
fn write(version: u8, aux: AuxFields, functions: &[Bytes], data: &Dataset) -> Vec<u8> {
    let mut w = Writer::new(WriterConfig {
        version,
        aux,
        ..WriterConfig::default()
    })
    .unwrap();
    let mut file = Vec::new();
    let drain = |w: &mut Writer, file: &mut Vec<u8>| {
        while let Some(chunk) = w.poll_chunk() {
            file.extend_from_slice(&chunk);
        }
    };
    for f in functions {
        w.function(f).unwrap();
        drain(&mut w, &mut file);
    }
    for (db, keys) in data {
        let expires = keys.iter().filter(|k| k.1.expire_ms.is_some()).count() as u64;
        w.select_db(*db, keys.len() as u64, expires).unwrap();
        for (key, opts, value) in keys {
            w.key(key, value, *opts).unwrap();
            drain(&mut w, &mut file);
        }
    }
    file.extend_from_slice(&w.finish().unwrap());
    assert_eq!(w.bytes_out(), file.len() as u64);
    file
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_dataset_roundtrips(
        (version, data) in (9u8..=12).prop_flat_map(|v| (Just(v), arb_dataset(v))),
        ctime in any::<i64>(),
        used_mem in any::<u64>(),
        offset in any::<i64>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let aux = AuxFields {
            ctime,
            used_mem,
            repl: Some(ReplInfo { stream_db: 3, id: b("a".repeat(40)), offset }),
            extra: vec![(b("x-note"), b("hi"))],
            ..AuxFields::default()
        };
        let functions: Vec<Bytes> = if version >= 10 {
            vec![b("#!lua name=lib\nredis.register_function('f', function() return 1 end)")]
        } else {
            Vec::new()
        };
        let file = write(version, aux, &functions, &data);
        let magic = format!("REDIS{:04}", version);
        prop_assert!(file.starts_with(magic.as_bytes()));
        let parsed = parse(&file, &cuts);
        prop_assert!(matches!(parsed.checksum, Some(Checksum::Verified(_))));
        prop_assert_eq!(&parsed.functions, &functions);
        let mut want_aux = vec![
            (b("redis-ver"), b("7.0.15")),
            (b("redis-bits"), b("64")),
            (b("ctime"), b(ctime.to_string())),
            (b("used-mem"), b(used_mem.to_string())),
            (b("repl-stream-db"), b("3")),
            (b("repl-id"), b("a".repeat(40))),
            (b("repl-offset"), b(offset.to_string())),
        ];
        if version >= 10 {
            want_aux.push((b("aof-base"), b("0")));
        }
        want_aux.push((b("x-note"), b("hi")));
        prop_assert_eq!(&parsed.aux, &want_aux);
        prop_assert_eq!(&parsed.dbs, &data);
        for (db, keys) in &data {
            let expires = keys.iter().filter(|k| k.1.expire_ms.is_some()).count() as u64;
            prop_assert_eq!(parsed.resize.get(db), Some(&(keys.len() as u64, expires)));
        }
    }

    #[test]
    fn dump_payloads_roundtrip(
        (version, value) in (9u8..=12).prop_flat_map(|v| (Just(v), arb_value(v))),
    ) {
        let payload = ObjectEncoder::new(version).unwrap().dump_payload(&value).unwrap();
        let dump = parse_dump_payload(&payload, &ParserConfig::default(), u64::MAX).unwrap();
        prop_assert_eq!(dump.version, u16::from(version));
        prop_assert_eq!(normalize(&dump.value), value);
        // Any single-byte corruption is caught (by the CRC, or as a bad value).
        let i = payload.len() / 2;
        let mut bad = payload.clone();
        bad[i] ^= 0x5a;
        prop_assert!(parse_dump_payload(&bad, &ParserConfig::default(), u64::MAX).is_err());
    }
}

/// A string streamed in pieces with `begin_string` parses back whole.
#[test]
fn streamed_strings_roundtrip() {
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut w = Writer::new(WriterConfig::default()).unwrap();
    w.select_db(0, 2, 1).unwrap();
    w.begin_string(b"big", big.len() as u64, KeyOptions::expire_at(42))
        .unwrap();
    let mut max_buffered = 0;
    let mut file = Vec::new();
    for piece in big.chunks(10_000) {
        w.string_chunk(piece).unwrap();
        max_buffered = max_buffered.max(w.buffered());
        while let Some(c) = w.poll_chunk() {
            file.extend_from_slice(&c);
        }
    }
    w.end_string().unwrap();
    w.key(b"small", &Value::String(b("x")), KeyOptions::default())
        .unwrap();
    while let Some(c) = w.poll_chunk() {
        file.extend_from_slice(&c);
    }
    file.extend_from_slice(&w.finish().unwrap());
    assert!(max_buffered < 20_000, "buffered {max_buffered} bytes");
    let parsed = parse(&file, &[]);
    let keys = &parsed.dbs[&0];
    assert_eq!(keys[0].0, b("big"));
    assert_eq!(keys[0].1.expire_ms, Some(42));
    assert_eq!(keys[0].2, Value::String(Bytes::from(big)));
    assert_eq!(keys[1].2, Value::String(b("x")));
}

/// Data the target cannot hold is refused with the key's name; nothing is written.
#[test]
fn lossy_data_is_refused_naming_the_key() {
    let hash = Value::Hash(vec![HashEntry {
        field: b("f"),
        value: b("v"),
        expire_ms: Some(1_900_000_000_000),
    }]);
    let mut w = Writer::new(WriterConfig::default()).unwrap();
    let before = w.buffered();
    let err = w.key(b"h\x01", &hash, KeyOptions::default()).unwrap_err();
    assert!(matches!(err, WriteError::Encode { ref key, .. } if key == "h\\x01"));
    assert!(err.to_string().contains("hash field expiry"));
    assert_eq!(w.buffered(), before);

    let mut stream = Stream {
        entries: vec![StreamEntry {
            id: StreamId { ms: 5, seq: 0 },
            fields: vec![(b("a"), b("1"))],
        }],
        meta: {
            let mut m = StreamMeta::new(1, StreamId { ms: 9, seq: 0 });
            m.first_id = Some(StreamId { ms: 5, seq: 0 });
            m.max_deleted_id = Some(StreamId { ms: 7, seq: 0 });
            m.entries_added = Some(3);
            m
        },
        groups: Vec::new(),
    };
    let v9 = WriterConfig {
        version: 9,
        ..WriterConfig::default()
    };
    let mut w = Writer::new(v9.clone()).unwrap();
    let value = Value::Stream(Box::new(stream.clone()));
    assert_eq!(w.would_lose(&value), Some("max deleted id"));
    assert!(matches!(
        w.key(b"s", &value, KeyOptions::default()),
        Err(WriteError::Lossy { ref key, version: 9, what: "max deleted id" }) if key == "s"
    ));
    // Version 10 holds it; with allow_lossy version 9 writes it too.
    let mut w10 = Writer::new(WriterConfig::default()).unwrap();
    w10.key(b"s", &value, KeyOptions::default()).unwrap();
    let mut lossy = Writer::new(WriterConfig {
        allow_lossy: true,
        ..v9
    })
    .unwrap();
    lossy.key(b"s", &value, KeyOptions::default()).unwrap();
    stream.meta.max_deleted_id = None;
    stream.meta.entries_added = Some(1);
    let exact = Value::Stream(Box::new(stream));
    assert_eq!(w.would_lose(&exact), None);
    w.key(b"s", &exact, KeyOptions::default()).unwrap();
}

/// Every real DUMP payload in the corpus decodes, to the value its expected JSON's key
/// count says, and payloads with trailing bytes or a bad CRC are refused.
#[test]
fn corpus_dump_payloads_parse() {
    let dir = support::corpus::corpus_dir();
    let mut n = 0;
    for server in ["generated_redis-7.0.15", "generated_valkey-8.1.8"] {
        let sub = dir.join(server).join("dump-payloads");
        let mut files: Vec<_> = std::fs::read_dir(&sub)
            .unwrap_or_else(|e| panic!("{}: {e}", sub.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "dump"))
            .collect();
        files.sort();
        for path in files {
            let payload = std::fs::read(&path).unwrap();
            let dump = parse_dump_payload(&payload, &ParserConfig::default(), u64::MAX)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let version =
                u16::from_le_bytes([payload[payload.len() - 10], payload[payload.len() - 9]]);
            assert_eq!(dump.version, version);
            assert!(!dump.value.is_empty() || matches!(dump.value, Value::String(_)));
            // The same value behind a payload with one more byte before the footer.
            let n_ = payload.len();
            let mut longer = payload[..n_ - 10].to_vec();
            longer.push(0);
            longer.extend_from_slice(&payload[n_ - 10..n_ - 8]);
            let crc = respsync::rdb::encoding::crc64::crc64(0, &longer);
            longer.extend_from_slice(&crc.to_le_bytes());
            assert!(
                parse_dump_payload(&longer, &ParserConfig::default(), u64::MAX).is_err(),
                "{}: trailing byte accepted",
                path.display()
            );
            let mut bad = payload.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(matches!(
                parse_dump_payload(&bad, &ParserConfig::default(), u64::MAX),
                Err(DumpError::Checksum { .. })
            ));
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} payloads");
}

/// Writes `value` with the streaming calls (`begin_*`, one call per item, `end_*`), draining
/// after every item; a list goes in `node_split`-element nodes when given, else by count.
fn write_streamed(
    w: &mut Writer,
    file: &mut Vec<u8>,
    key: &[u8],
    value: &Value,
    node_split: Option<usize>,
) {
    let opts = KeyOptions::expire_at(7);
    let mut drain = |w: &mut Writer| {
        while let Some(chunk) = w.poll_chunk() {
            file.extend_from_slice(&chunk);
        }
    };
    match value {
        Value::List(items) => match node_split {
            Some(k) => {
                w.begin_list_nodes(key, items.len().div_ceil(k) as u64, opts)
                    .unwrap();
                for node in items.chunks(k) {
                    node.iter().for_each(|e| w.list_element(e).unwrap());
                    w.end_list_node().unwrap();
                    drain(w);
                }
                w.end_list().unwrap();
            }
            None => {
                w.begin_list(key, items.len() as u64, opts).unwrap();
                for e in items {
                    w.list_element(e).unwrap();
                    drain(w);
                }
                w.end_list().unwrap();
            }
        },
        Value::Set(members) => {
            w.begin_set(key, members.len() as u64, opts).unwrap();
            for m in members {
                w.set_member(m).unwrap();
                drain(w);
            }
            w.end_set().unwrap();
        }
        Value::Zset(pairs) => {
            w.begin_zset(key, pairs.len() as u64, opts).unwrap();
            for (m, s) in pairs {
                w.zset_member(m, *s).unwrap();
                drain(w);
            }
            w.end_zset().unwrap();
        }
        Value::Hash(entries) => {
            w.begin_hash(key, entries.len() as u64, opts).unwrap();
            for e in entries {
                w.hash_field(&e.field, &e.value).unwrap();
                drain(w);
            }
            w.end_hash().unwrap();
        }
        other => panic!("not a collection: {other:?}"),
    }
    drain(w);
}

/// Items of a streamed collection: mostly short strings or integers, sometimes long ones
/// (which rule out the compact encodings midway).
fn arb_item() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        8 => "[a-z]{1,12}".prop_map(b),
        3 => any::<i32>().prop_map(|i| b(i.to_string())),
        1 => "[a-z]{65,90}".prop_map(b),
    ]
}

/// Lists, sets, zsets and hashes from one element to well past every threshold.
fn arb_collection() -> impl Strategy<Value = Value> {
    let items = || proptest::collection::vec(arb_item(), 1..700);
    let unique = || items().prop_map(|v| dedup(v, |x| x.clone()));
    prop_oneof![
        items().prop_map(Value::List),
        unique().prop_map(Value::Set),
        // Integer-only sets (intsets while small).
        proptest::collection::btree_set(any::<i64>(), 1..700)
            .prop_map(|s| Value::Set(s.into_iter().map(|i| b(i.to_string())).collect())),
        unique().prop_map(|v| Value::Zset(
            v.into_iter()
                .enumerate()
                .map(|(i, m)| (m, i as f64 / 3.0 - 50.0))
                .collect()
        )),
        unique().prop_map(|v| Value::Hash(
            v.into_iter()
                .enumerate()
                .map(|(i, f)| HashEntry {
                    field: f,
                    value: b(i.to_string()),
                    expire_ms: None
                })
                .collect()
        )),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Collections written item by item parse back to the same data, at every version, with
    /// lists split by count or into caller-delimited nodes, parsed from arbitrary pieces.
    #[test]
    fn streamed_collections_roundtrip(
        version in 9u8..=12,
        values in proptest::collection::vec((arb_collection(), proptest::option::of(1usize..300)), 1..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut w = Writer::new(WriterConfig { version, ..WriterConfig::default() }).unwrap();
        let mut file = Vec::new();
        w.select_db(0, values.len() as u64, values.len() as u64).unwrap();
        for (i, (value, split)) in values.iter().enumerate() {
            write_streamed(&mut w, &mut file, format!("k{i}").as_bytes(), value, *split);
        }
        file.extend_from_slice(&w.finish().unwrap());
        let parsed = parse(&file, &cuts);
        prop_assert!(matches!(parsed.checksum, Some(Checksum::Verified(_))));
        let keys = &parsed.dbs[&0];
        prop_assert_eq!(keys.len(), values.len());
        for ((key, opts, got), (i, (want, _))) in keys.iter().zip(values.iter().enumerate()) {
            prop_assert_eq!(key, &b(format!("k{i}")));
            prop_assert_eq!(opts.expire_ms, Some(7));
            prop_assert_eq!(normalize(got), normalize(want));
        }
    }
}

/// The declared count of a streamed collection is enforced: one item too many is refused at
/// once, too few at `end_*`; calls for another type, or records in between, are refused.
#[test]
fn streamed_collection_counts_are_checked() {
    let mut w = Writer::new(WriterConfig::default()).unwrap();
    w.begin_hash(b"h", 200, KeyOptions::default()).unwrap();
    for i in 0..199 {
        w.hash_field(format!("f{i}").as_bytes(), b"v").unwrap();
    }
    assert_eq!(
        w.select_db(1, 0, 0).unwrap_err(),
        WriteError::CollectionOpen
    );
    assert_eq!(w.set_member(b"x").unwrap_err(), WriteError::CollectionOpen);
    assert_eq!(w.end_set().unwrap_err(), WriteError::CollectionOpen);
    assert_eq!(
        w.end_hash().unwrap_err(),
        WriteError::CollectionLength {
            what: "fields",
            declared: 200,
            got: 199
        }
    );
    w.hash_field(b"last", b"v").unwrap();
    assert_eq!(
        w.hash_field(b"extra", b"v").unwrap_err(),
        WriteError::CollectionLength {
            what: "fields",
            declared: 200,
            got: 201
        }
    );
    w.end_hash().unwrap();

    // Small (collected) sets are counted the same way.
    w.begin_set(b"s", 2, KeyOptions::default()).unwrap();
    w.set_member(b"1").unwrap();
    assert!(matches!(
        w.end_set(),
        Err(WriteError::CollectionLength {
            declared: 2,
            got: 1,
            ..
        })
    ));
    w.set_member(b"2").unwrap();
    w.end_set().unwrap();

    // Lists by nodes: no empty node, no node past the declared count.
    w.begin_list_nodes(b"l", 1, KeyOptions::default()).unwrap();
    assert!(matches!(w.end_list_node(), Err(WriteError::Encode { .. })));
    w.list_element(b"a").unwrap();
    w.end_list_node().unwrap();
    assert_eq!(
        w.list_element(b"b").unwrap_err(),
        WriteError::CollectionLength {
            what: "nodes",
            declared: 1,
            got: 2
        }
    );
    w.end_list().unwrap();

    // NaN scores and empty collections are refused.
    w.begin_zset(b"z", 300, KeyOptions::default()).unwrap();
    assert!(matches!(
        w.zset_member(b"m", f64::NAN),
        Err(WriteError::Encode { .. })
    ));
    assert!(matches!(
        Writer::new(WriterConfig::default())
            .unwrap()
            .begin_list(b"e", 0, KeyOptions::default()),
        Err(WriteError::Encode { .. })
    ));
}
